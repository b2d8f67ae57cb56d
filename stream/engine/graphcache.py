"""Where graphs derived at load time (fast span head, int8) are kept, keyed by their source."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def cache_dir(root: str | Path | None = None) -> Path:
    """``root``/graphs (default root: ``SPANSTREAM_CACHE_DIR``, else ~/.cache/spanstream); a temp
    folder when that is not writable (read-only images)."""
    base = root or os.environ.get("SPANSTREAM_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache",
                                                                         "spanstream")
    path = Path(base) / "graphs"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.touch()
        probe.unlink()
        return path
    except OSError:
        fallback = Path(tempfile.gettempdir()) / "spanstream-graphs"
        fallback.mkdir(parents=True, exist_ok=True)
        return fallback


def digest(path: Path, version: str) -> str:
    """Content hash of ``path`` (with the external data files its weights live in) and the deriving
    code's ``version``: a changed source or recipe never reuses a stale graph."""
    from stream.engine.onnxfiles import external_files

    h = hashlib.sha256(version.encode())
    external = _hash_file(Path(path), h)
    for part in external_files(path) if external else ():
        _hash_file(part, h)
    return h.hexdigest()[:20]


def _hash_file(path: Path, h) -> bool:
    """Adds the file to ``h``; True if it may hold an external-data reference (the key
    "location" occurs), so that only such files are parsed for one (a 45 MB graph: 0.16 s)."""
    seen, tail = False, b""
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
            seen = seen or b"location" in tail + block
            tail = block[-8:]
    return seen


def save_atomically(model, out: Path) -> None:
    """Write an ONNX model so that concurrent loaders never read half a file."""
    import onnx

    tmp = out.with_suffix(f".tmp{os.getpid()}")
    onnx.save(model, str(tmp))
    os.replace(tmp, out)
