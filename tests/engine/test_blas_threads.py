"""numpy's OpenBLAS beside onnxruntime: its worker threads busy-wait after every multi-threaded
call (OpenBLAS's THREAD_TIMEOUT, 2^28 cycles by default) and take the cores onnxruntime's next run
needs. spanstream sets the shortest wait before numpy can load, and leaves a user's own value."""

from __future__ import annotations

import os
import subprocess
import sys


def _timeout_seen_by_a_fresh_process(env: dict[str, str]) -> str:
    code = ("import sys, os; import stream; assert 'numpy' not in sys.modules; "
            "import numpy; print(os.environ.get('OPENBLAS_THREAD_TIMEOUT', 'unset'))")
    return subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def test_importing_spanstream_sets_the_blas_spin_wait_before_numpy_loads():
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_THREAD_TIMEOUT", "GOTO_THREAD_TIMEOUT")}
    assert _timeout_seen_by_a_fresh_process(env) == "4"


def test_a_value_the_user_set_is_kept():
    assert _timeout_seen_by_a_fresh_process({**os.environ, "OPENBLAS_THREAD_TIMEOUT": "12"}) == "12"
