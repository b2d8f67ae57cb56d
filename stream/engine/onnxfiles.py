"""ONNX files whose weights live beside them: saved in pieces of bounded size (a repository keeps
each file under 50 MB), and listed so a cache key can cover every byte a graph is made of."""

from __future__ import annotations

import os
from pathlib import Path

import onnx
from onnx import TensorProto, numpy_helper

# Tensors smaller than this stay inside the graph file (shapes, small constants).
INLINE_BYTES = 1024


def save_split(model: onnx.ModelProto, path: Path, max_file_bytes: int) -> list[Path]:
    """Write ``model`` to ``path`` with its initializers in ``<name>.data.<n>`` files of at most
    ``max_file_bytes`` each (a tensor never spans two files; one larger than the limit is refused
    by name). Returns the data files, in order."""
    path = Path(path)
    for old in path.parent.glob(f"{path.name}.data.*"):
        old.unlink()
    pieces: list[Path] = []
    chunks: list[list[bytes]] = []
    used = max_file_bytes  # forces a first file
    for tensor in model.graph.initializer:
        raw = numpy_helper.to_array(tensor).tobytes() if not tensor.HasField("raw_data") else tensor.raw_data
        if len(raw) < INLINE_BYTES:
            continue
        if len(raw) > max_file_bytes:
            raise ValueError(f"initializer {tensor.name!r} has {len(raw):,} bytes, over the "
                             f"{max_file_bytes:,}-byte file limit")
        if used + len(raw) > max_file_bytes:
            pieces.append(path.with_name(f"{path.name}.data.{len(pieces)}"))
            chunks.append([])
            used = 0
        dims, dtype, name = list(tensor.dims), tensor.data_type, tensor.name
        tensor.Clear()
        tensor.name, tensor.data_type = name, dtype
        tensor.dims.extend(dims)
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in (("location", pieces[-1].name), ("offset", str(used)), ("length", str(len(raw)))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
        chunks[-1].append(raw)
        used += len(raw)
    for piece, parts in zip(pieces, chunks):
        piece.write_bytes(b"".join(parts))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(model.SerializeToString())
    os.replace(tmp, path)
    return pieces


def external_files(path: Path) -> list[Path]:
    """The data files a saved model's initializers point to, in first-use order (none for a
    self-contained file)."""
    model = onnx.load(str(path), load_external_data=False)
    seen: dict[str, None] = {}
    for tensor in model.graph.initializer:
        if tensor.data_location == TensorProto.EXTERNAL:
            seen.update({e.value: None for e in tensor.external_data if e.key == "location"})
    return [Path(path).parent / name for name in seen]
