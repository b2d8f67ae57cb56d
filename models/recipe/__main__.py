"""`make model`: data → train → export → evaluate, resumable at every step.

Environment: RECIPE_WORK (work folder), RECIPE_STEPS (training steps), RECIPE_THREADS.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from models.recipe.data import build
from models.recipe.export import export
from models.recipe.quantize import CALIBRATION_TEXTS
from models.recipe.train import train

HERE = Path(__file__).resolve().parent
DEST = HERE.parent / "spanstream-minilm-ner"


def main() -> int:
    work = Path(os.environ.get("RECIPE_WORK", HERE / "work"))
    steps = int(os.environ.get("RECIPE_STEPS", "4000"))
    train_path, dev_path = build(work)
    final = train(work, train_path, steps)
    calibration = [json.loads(line)["text"] for line in open(dev_path)][:CALIBRATION_TEXTS]
    export(final, work / "onnx", DEST, calibration)
    print(f"model installed in {DEST}")
    if "--no-eval" not in sys.argv:
        from models.recipe.card import write_card
        from models.recipe.evaluate import main as evaluate

        evaluate(work, DEST)
        rows = sum(1 for _ in open(train_path))
        dev = sum(1 for _ in open(dev_path))
        write_card(DEST, steps, rows, dev)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
