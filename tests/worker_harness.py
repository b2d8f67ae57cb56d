"""Run real `spanstream worker` processes against the test broker, and read what they wrote."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from devtools.localkafka import free_port

ROOT = Path(__file__).resolve().parent.parent
TINY_MODEL = ROOT / "tests" / "fixtures" / "tiny-gliner"


def pipeline_toml(name: str, inp: str, out: str, dlq: str, **extra) -> str:
    lines = ["[[pipelines]]", f'name = "{name}"', f'input_topics = ["{inp}"]', f'output_topic = "{out}"',
             f'dead_letter_topic = "{dlq}"', 'labels = ["person", "location", "organization"]']
    for k, v in extra.items():
        lines.append(f"{k} = {v!r}".replace("'", '"') if not isinstance(v, bool) else f"{k} = {str(v).lower()}")
    return "\n".join(lines) + "\n"


def http_request(port: int, path: str, body: dict | None = None) -> tuple[int, bytes]:
    """GET (or POST ``body`` as JSON) on 127.0.0.1:``port``; (status, body), errors included."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@dataclass
class WorkerProc:
    workdir: Path
    bootstrap: str
    config: str
    group: str
    model: Path = TINY_MODEL
    env: dict = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    cgroup: "MemoryCgroup | None" = None  # started inside it (a pod's memory limit)

    def start(self) -> "WorkerProc":
        self.workdir.mkdir(parents=True, exist_ok=True)
        cfg = self.workdir / "pipelines.toml"
        cfg.write_text(self.config)
        self.log = self.workdir / f"worker-{self.port}.log"
        env = {**os.environ, "SPANSTREAM_SESSION_TIMEOUT_S": "8", "SPANSTREAM_HEARTBEAT_INTERVAL_S": "1",
               "SPANSTREAM_COMMIT_INTERVAL_S": "0.5", **self.env}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stream", "worker", "--config", str(cfg), "--bootstrap", self.bootstrap,
             "--group-id", self.group, "--model", str(self.model), "--http-port", str(self.port),
             "--data-dir", str(self.workdir / "data")],
            stdout=open(self.log, "wb"), stderr=subprocess.STDOUT, cwd=ROOT, env=env,
            preexec_fn=self.cgroup.join if self.cgroup else None)
        return self

    def http(self, path: str, body: dict | None = None) -> tuple[int, bytes]:
        return http_request(self.port, path, body)

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if self.http("/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"worker not ready after {timeout}s:\n{self.tail()}")

    def partitions(self) -> int:
        """Partitions this worker owns now (``/readyz`` reports them; readiness does not need any)."""
        try:
            status, body = self.http("/readyz")
        except OSError:
            return 0
        return int(json.loads(body).get("partitions", 0)) if status == 200 else 0

    def metric(self, name: str) -> float:
        _, body = self.http("/metrics")
        total = 0.0
        for line in body.decode().splitlines():
            if line.startswith(name) and not line.startswith("#"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def terminate(self, timeout: float = 60) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else 0

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes | None, list]],
                  partition: int | None = None, max_request_size: int = 1_048_576) -> list[tuple[int, int]]:
    """Send (key, value, headers) records; return their (partition, offset)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                                max_request_size=max_request_size)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key, headers=headers, partition=partition)
                   for key, value, headers in records]
        metas = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [(m.partition, m.offset) for m in metas]


async def consume(bootstrap: str, topics: list[str], expected: int, timeout: float = 60,
                  until=None) -> list:
    """Read from the beginning until ``expected`` records (or ``until(records)``) or the timeout."""
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=f"reader-{uuid.uuid4().hex[:8]}", enable_auto_commit=False)
    await consumer.start()
    out = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                out.extend(records)
            if (until and until(out)) or (not until and len(out) >= expected):
                break
    finally:
        await consumer.stop()
    return out


@pytest.fixture
def worker_factory(kafka_bootstrap, tmp_path):
    started = []

    def make(config: str, group: str | None = None, **kw) -> WorkerProc:
        w = WorkerProc(tmp_path / f"w{len(started)}", kafka_bootstrap, config, group or f"g-{uuid.uuid4().hex[:8]}",
                       **kw).start()
        started.append(w)
        return w

    yield make
    for w in started:
        if w.proc.poll() is None:
            w.kill()


class MemoryCgroup:
    """A child memory cgroup of this process's own, with a limit: what a pod's ``resources.limits.
    memory`` is to a container. cgroup v1 (``memory.limit_in_bytes``) or v2 (``memory.max``). No
    swap on the test machines, so going over the limit is an OOM kill, counted by the kernel."""

    def __init__(self, limit: int):
        from stream.config import _memory_cgroups

        found = [(base / group, name) for base, group, name in _memory_cgroups(Path("/sys/fs/cgroup"), "/proc/self/cgroup")
                 if (base / group).is_dir()]
        if not found:
            raise RuntimeError("no memory cgroup to nest in: /proc/self/cgroup names none (this test needs one)")
        parent, self.limit_file = found[0]
        self.v1 = self.limit_file == "memory.limit_in_bytes"
        self.path = parent / f"spanstream-test-{uuid.uuid4().hex[:8]}"
        self.path.mkdir()
        if not (self.path / self.limit_file).exists():
            self.remove()
            raise RuntimeError(f"{parent} does not delegate the memory controller to its children (this test needs it)")
        (self.path / self.limit_file).write_text(str(limit))
        self.limit = limit

    def join(self) -> None:
        """In the child between fork and exec: move it into the group."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def peak(self) -> int:
        """Most memory the group used (RSS and page cache), in bytes."""
        name = "memory.max_usage_in_bytes" if self.v1 else "memory.peak"
        return int((self.path / name).read_text().split()[0])

    def oom_kills(self) -> int:
        text = (self.path / ("memory.oom_control" if self.v1 else "memory.events")).read_text()
        return next((int(line.split()[1]) for line in text.splitlines() if line.startswith("oom_kill ")), 0)

    def remove(self) -> None:
        try:
            self.path.rmdir()
        except OSError:
            pass
