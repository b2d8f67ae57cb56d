"""The only place onnxruntime is imported: session options, thread sizing, graph checks."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from stream.errors import ModelLoadError


def cpu_quota() -> int:
    """CPUs this process may use: affinity, capped by a cgroup (v2 or v1) CPU quota."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = None
    try:
        raw = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if raw[0] != "max":
            quota = int(raw[0]) / int(raw[1])
    except (OSError, ValueError, IndexError):
        try:
            q = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
            p = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
            if q > 0 and p > 0:
                quota = q / p
        except (OSError, ValueError):
            pass
    if quota is not None:
        cpus = min(cpus, max(1, int(quota + 0.5)))
    return max(1, cpus)


class OnnxSession:
    """One shared ORT session; ``run`` is safe to call from several threads.

    Spinning is off: idle intra-op threads that spin starve other work on small CPU quotas.
    """

    def __init__(self, path: Path | bytes, expected_inputs: tuple[str, ...], expected_outputs: tuple[str, ...],
                 threads: int | None = None, profile_prefix: str | None = None, name: str | None = None):
        """``path``: an ONNX file, or a serialized model built in memory (then ``name`` says
        what it is in errors)."""
        label = name or (str(path) if not isinstance(path, bytes) else "a graph built in memory")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or cpu_quota()
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        opts.log_severity_level = 3
        if profile_prefix:  # per-node timings for bench/profile.py; never on in the worker
            opts.enable_profiling = True
            opts.profile_file_prefix = profile_prefix
        try:
            source = path if isinstance(path, bytes) else str(path)
            self._session = ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelLoadError(f"{label}: onnxruntime cannot load it: {exc}") from exc
        inputs = {i.name for i in self._session.get_inputs()}
        outputs = {o.name for o in self._session.get_outputs()}
        if missing := [n for n in expected_inputs if n not in inputs]:
            raise ModelLoadError(f"{label}: graph lacks inputs {missing}; it has {sorted(inputs)}")
        if extra := sorted(inputs - set(expected_inputs)):
            raise ModelLoadError(f"{label}: graph wants unknown inputs {extra}")
        if missing := [n for n in expected_outputs if n not in outputs]:
            raise ModelLoadError(f"{label}: graph lacks outputs {missing}; it has {sorted(outputs)}")
        self._outputs = list(expected_outputs)
        self.threads = opts.intra_op_num_threads
        self.path = None if isinstance(path, bytes) else Path(path)
        self.name = label
        self.run_seconds = 0.0
        "Wall time spent inside onnxruntime (for benchmarks: the share of time outside it)."

    def end_profiling(self) -> Path:
        """Stop profiling; the path of onnxruntime's JSON trace."""
        return Path(self._session.end_profiling())

    def run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        started = time.perf_counter()
        try:
            return self._session.run(self._outputs, feed)
        finally:
            self.run_seconds += time.perf_counter() - started
