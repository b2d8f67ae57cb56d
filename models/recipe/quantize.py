"""Dynamic int8 quantization of an exported GLiNER graph with per-channel signed weights.

gliner's own export quantizes per tensor with unsigned weights; per-channel s8 keeps more
precision and runs faster on AVX2 (measured in bench). The output stays a standard
``model_quantized.onnx`` that any GLiNER runtime loads.
"""

from __future__ import annotations

import sys
from pathlib import Path


def quantize(fp32: Path, out: Path, per_channel: bool = True) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8, per_channel=per_channel,
                     op_types_to_quantize=["MatMul", "Gemm", "Gather"], extra_options={"MatMulConstBOnly": True})
    return out


if __name__ == "__main__":
    quantize(Path(sys.argv[1]), Path(sys.argv[2]))
