"""GLiNER2 int8: the encoder is quantized at load with per-token activation scales, so a text's
result does not depend on what it is batched with (per-tensor dynamic scales would make it)."""

from __future__ import annotations

import json
from pathlib import Path

from stream.engine.gliner2.engine import Gliner2Engine
from tests.fixtures.gliner2_cases import SCHEMAS, gliner2_texts

MODEL = Path(__file__).resolve().parents[1] / "fixtures" / "tiny-gliner2" / "bert" / "spanstream"


def test_int8_results_do_not_depend_on_batch_mates(tmp_path):
    engine = Gliner2Engine(MODEL, threads=1, variant="int8", cache_dir=tmp_path)
    assert engine.info.variant == "int8"
    texts = gliner2_texts()[:48]
    schema = SCHEMAS["all"]
    batched = engine.extract(texts, schema, include_confidence=True, include_spans=True, batch_size=16)
    alone = [engine.extract([t], schema, include_confidence=True, include_spans=True)[0] for t in texts]
    assert [json.dumps(r) for r in batched] == [json.dumps(r) for r in alone]
    fp32 = Gliner2Engine(MODEL, threads=1).extract(texts, schema, include_confidence=True, include_spans=True)
    assert fp32 != batched  # it is really another graph
