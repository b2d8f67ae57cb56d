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
    for part in [Path(path), *external_files(path)]:
        with open(part, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:20]


def save_atomically(model, out: Path) -> None:
    """Write an ONNX model so that concurrent loaders never read half a file."""
    import onnx

    tmp = out.with_suffix(f".tmp{os.getpid()}")
    onnx.save(model, str(tmp))
    os.replace(tmp, out)
