"""`make model-gliner2`: corpora → mix → train (resumable) → export.

Environment: RECIPE_WORK (work folder), RECIPE_STEPS (training steps), RECIPE_THREADS,
RECIPE_CORPORA (local git copies of the source repositories, see ``sources``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from models.gliner2_recipe.mix import build
from models.gliner2_recipe.train import steps_setting, train

HERE = Path(__file__).resolve().parent
DEST = HERE.parent / "spanstream-minilm-gliner2"


def main() -> int:
    work = Path(os.environ.get("RECIPE_WORK", HERE / "work"))
    steps = steps_setting()
    if not (work / "train.jsonl").exists():
        print(json.dumps(build(work), indent=1))
    final = train(work, work / "train.jsonl", steps)
    print(f"trained: {final}")
    if "--no-export" in sys.argv:
        return 0
    from models.gliner2_recipe.export import export

    export(final, DEST, work)
    print(f"model installed in {DEST}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
