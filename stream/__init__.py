"""spanstream: streaming zero-shot entity extraction (GLiNER on onnxruntime) for Kafka.

Importing this package sets one environment default and nothing else; heavy modules load on
first use. The default: numpy's OpenBLAS worker threads busy-wait after every multi-threaded
call (``THREAD_TIMEOUT``, 2^28 cycles ≈ 0.1 s by default) and so take the cores onnxruntime's
next run needs — the heads run in numpy between encoder calls. ``OPENBLAS_THREAD_TIMEOUT=4``
(2^4 cycles, OpenBLAS's minimum) lets them sleep at once. OpenBLAS reads it when it loads, so
it is set here, before anything imports numpy; a value already in the environment wins. Its
measured effect and the command that reproduces it: ``bench/GLINER2.md``.
"""

import os as _os

_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

__version__ = "0.1.0"

__all__ = ["__version__"]
