"""GLiNER2 int8: the encoder is quantized at load with per-token activation scales, so a text's
result does not depend on what it is batched with (per-tensor dynamic scales would make it):
the same spans, texts, labels and fields, with confidences equal up to float GEMM rounding
(onnxruntime's fp32 kernels may block a batch of 16 differently from a batch of 1; per-tensor
int8 moved scores by up to 0.1)."""

from __future__ import annotations

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
    deltas: list[float] = []
    for b, a in zip(batched, alone):
        assert _shape(b) == _shape(a)
        deltas += [abs(x - y) for x, y in zip(_numbers(b), _numbers(a))]
    assert max(deltas) < 1e-4, max(deltas)
    fp32 = Gliner2Engine(MODEL, threads=1).extract(texts, schema, include_confidence=True, include_spans=True)
    assert fp32 != batched  # it is really another graph


def _shape(result):
    """Everything but the confidences: texts, spans, labels, field names, order."""
    if isinstance(result, dict):
        return {k: _shape(v) for k, v in result.items() if k != "confidence"}
    if isinstance(result, list):
        return [_shape(v) for v in result]
    return result


def _numbers(result) -> list[float]:
    if isinstance(result, dict):
        return [x for k, v in result.items() for x in ([v] if k == "confidence" else _numbers(v))]
    if isinstance(result, list):
        return [x for v in result for x in _numbers(v)]
    return []
