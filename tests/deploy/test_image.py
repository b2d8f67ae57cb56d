"""The image from ``docker/Dockerfile``, built and run for real.

The ``docker`` fixture (``conftest.py``) gets a Docker engine (``DOCKER_HOST``, or a private ``dockerd`` started by
``devtools.docker``: no bridge, so containers use the host network or none), makes sure
``python:3.11-slim`` resolves (a registry, or the Debian stand-in when none serves it) and builds
the Dockerfile unchanged. A missing engine or a failed build fails these tests; nothing skips.
Containers run as users would lock them down: read-only root, ``/tmp`` tmpfs, no capabilities,
no privilege escalation.
"""

from __future__ import annotations

import time
import uuid

import orjson
import pytest

from devtools import docker as dk
from devtools.localkafka import free_port
from tests.deploy.conftest import TAG
from tests.worker_harness import consume, pipeline_toml, produce
from tests.worker_harness import http_request as http

LOCKED_DOWN = ["--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
               "--cpus", "2", "--memory", "2g"]


class Container:
    def __init__(self, docker: dk.Docker, *args: str, name: str | None = None):
        self.docker = docker
        self.name = name or f"spanstream-test-{uuid.uuid4().hex[:8]}"
        docker.run("run", "-d", "--name", self.name, *args)

    def inspect(self, fmt: str) -> str:
        return self.docker.run("inspect", "--format", fmt, self.name).stdout.strip()

    def logs(self) -> str:
        proc = self.docker.run("logs", "--tail", "80", self.name, check=False)
        return proc.stdout + proc.stderr

    def running(self) -> bool:
        return self.inspect("{{.State.Running}}") == "true"

    def stop(self, timeout: int = 60) -> int:
        self.docker.run("stop", "-t", str(timeout), self.name, timeout=timeout + 30)
        return int(self.inspect("{{.State.ExitCode}}"))

    def remove(self) -> None:
        self.docker.run("rm", "-f", self.name, check=False)


@pytest.fixture
def containers(docker):
    made: list[Container] = []

    def run(*args: str) -> Container:
        made.append(Container(docker, *args))
        return made[-1]

    yield run
    for c in made:
        c.remove()


def wait_http(container: Container, port: int, path: str, timeout: float = 120) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        assert container.running(), container.logs()
        try:
            if http(port, path)[0] == 200:
                return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{path} not 200 after {timeout}s:\n{container.logs()}")


def test_runtime_image_runs_as_non_root_without_the_export_tools(docker):
    probe = ("import importlib.util as u, os; "
             "print(os.getuid(), [m for m in ('torch', 'gliner', 'gliner2', 'transformers', 'pytest') "
             "if u.find_spec(m)])")
    out = docker.run("run", "--rm", "--network", "none", *LOCKED_DOWN, "--entrypoint", "python", TAG,
                     "-c", probe).stdout.split(maxsplit=1)
    assert out == ["10001", "[]\n"] or out == ["10001", "[]"]


def test_serve_on_a_read_only_root_answers_probes_extract_and_metrics_then_stops_cleanly(containers):
    port = free_port()
    c = containers("--network", "host", *LOCKED_DOWN, "-e", f"SPANSTREAM_HTTP_PORT={port}", TAG, "serve")
    cold_start = wait_http(c, port, "/healthz")
    print(f"\nserve: /healthz 200 {cold_start:.1f} s after `docker run`")
    assert http(port, "/readyz")[0] == 200
    status, body = http(port, "/v1/extract", {"text": "Angela Merkel visited Paris.",
                                              "labels": ["person", "city"], "threshold": 0.3})
    assert status == 200, body
    entities = {(e["text"], e["label"]) for e in orjson.loads(body)["entities"]}
    assert ("Angela Merkel", "person") in entities and ("Paris", "city") in entities
    status, body = http(port, "/metrics")
    assert status == 200 and b"spanstream_http_requests_total" in body
    assert c.stop() == 0, c.logs()


def test_the_image_healthcheck_follows_the_configured_port(containers):
    c = containers("--network", "none", *LOCKED_DOWN, "--health-interval", "1s", "--health-start-period", "60s",
                   "-e", "SPANSTREAM_HTTP_PORT=7077", TAG, "serve")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and c.inspect("{{.State.Health.Status}}") != "healthy":
        assert c.running(), c.logs()
        time.sleep(0.5)
    assert c.inspect("{{.State.Health.Status}}") == "healthy", c.inspect("{{json .State.Health}}")


@pytest.mark.kafka
async def test_a_worker_container_processes_events_from_the_broker_and_drains_on_sigterm(
        kafka_bootstrap, topic_factory, containers, tmp_path):
    inp = await topic_factory(partitions=2, prefix="img-in")
    out = await topic_factory(partitions=2, prefix="img-out")
    dlq = await topic_factory(partitions=1, prefix="img-dlq")
    config = tmp_path / "pipelines.toml"
    config.write_text(pipeline_toml("image", inp, out, dlq, threshold=0.3))
    config.chmod(0o644)
    port = free_port()
    c = containers("--network", "host", *LOCKED_DOWN, "-v", f"{config}:/config/pipelines.toml:ro",
                   "-e", f"SPANSTREAM_KAFKA_BOOTSTRAP={kafka_bootstrap}", "-e", f"SPANSTREAM_GROUP_ID=img-{port}",
                   "-e", "SPANSTREAM_CONFIG=/config/pipelines.toml", "-e", f"SPANSTREAM_HTTP_PORT={port}",
                   "-e", "SPANSTREAM_COMMIT_INTERVAL_S=0.5", TAG, "worker")
    wait_http(c, port, "/readyz")
    texts = ["Angela Merkel met Emmanuel Macron in Paris.", "Apple hired engineers from Google in Austin."]
    coords = await produce(kafka_bootstrap, inp, [(None, orjson.dumps({"id": f"d{i}", "text": texts[i % 2]}), [])
                                                  for i in range(60)])
    records = await consume(kafka_bootstrap, [out], 60, timeout=120)
    sources = {(e["source"]["partition"], e["source"]["offset"]) for e in map(orjson.loads, (r.value for r in records))}
    assert sources == set(coords), c.logs()
    assert any(e["entities"] for e in map(orjson.loads, (r.value for r in records)))
    assert c.stop() == 0, c.logs()
    committed = await _committed(kafka_bootstrap, f"img-{port}", inp)
    assert committed == {0: sum(p == 0 for p, _ in coords), 1: sum(p == 1 for p, _ in coords)}


async def _committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}
