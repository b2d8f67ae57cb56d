"""``docker/compose.yaml`` brought up as it is: Kafka built from the Maven jars, topic creation, two
worker replicas, Prometheus scraping both, the sink into PostgreSQL; events produced with the
``produce`` tool come out of the ``tail`` tool with entities and are stored once in PostgreSQL. The images are built first with ``--network host`` (this
sandbox's daemon has no default bridge; compose's own network works), then ``up --no-build``.
Needs Debian's ``docker-compose`` (``make test-deps`` installs it); nothing skips."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from devtools import docker as dk
from devtools.localkafka import ensure_jars
from tests.deploy.conftest import TAG

ROOT = Path(__file__).resolve().parents[2]
IMAGES = {"spanstream-kafka:local": "docker/kafka.Dockerfile",
          "spanstream-prometheus:local": "docker/prometheus.Dockerfile",
          "spanstream-postgres:local": "docker/postgres.Dockerfile"}


@pytest.fixture(scope="module")
def compose(docker, tmp_path_factory):
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose not found: make test-deps installs Debian's docker-compose"
    ensure_jars()
    log_path = tmp_path_factory.mktemp("compose") / "build.log"
    with open(log_path, "wb") as log:
        for tag, dockerfile in IMAGES.items():
            try:
                dk.build_image(docker, tag, log, dockerfile)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}:\n{log_path.read_text(errors='replace')[-4000:]}") from None
    docker.run("tag", TAG, "spanstream:local")
    project = f"ss{uuid.uuid4().hex[:8]}"

    def run(*args: str, stdin: bytes | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([exe, "-p", project, "-f", str(ROOT / "docker" / "compose.yaml"), *args],
                              input=stdin, capture_output=True, env=docker.env, timeout=timeout)

    try:
        yield run
    finally:
        run("down", "-v", "--timeout", "30")


def _sql(compose, query: str) -> str:
    done = compose("exec", "-T", "postgres", "psql", "-U", "spanstream", "-tAc", query)
    return done.stdout.decode().strip() if done.returncode == 0 else f"error: {done.stderr.decode().strip()}"


def test_compose_stack_turns_produced_texts_into_entity_events_stored_once_in_postgres(compose, docker):
    """...and Prometheus scrapes every worker; every service stops cleanly (exit 0)."""
    up = compose("up", "-d", "--no-build")
    assert up.returncode == 0, up.stderr.decode()
    texts = b"".join(json.dumps({"id": f"d{i}", "text": "Angela Merkel met Emmanuel Macron in Paris."}).encode()
                     + b"\n" for i in range(20))
    produced = compose("run", "--rm", "-T", "produce", stdin=texts)
    assert produced.returncode == 0 and b"produced 20 records" in produced.stdout + produced.stderr, produced.stderr.decode()
    tail = compose("run", "--rm", "-T", "tail", "tail", "--topic", "entities", "--from-beginning",
                   "--bootstrap", "kafka:9092", "--json", "--max", "20", "--timeout", "90")
    events = [json.loads(line) for line in tail.stdout.splitlines() if line.strip()]
    assert len(events) == 20, (tail.stderr.decode(), compose("logs", "--tail", "40").stdout.decode())
    assert {e["id"] for e in events} == {f"d{i}" for i in range(20)}
    assert all({"Angela Merkel", "Paris"} <= {ent["text"] for ent in e["entities"]} for e in events)
    probe = ("import json, time, urllib.request\n"
             "for _ in range(60):\n"
             "    targets = json.load(urllib.request.urlopen('http://prometheus:9090/api/v1/targets'))\n"
             "    health = [t['health'] for t in targets['data']['activeTargets']]\n"
             "    if health.count('up') >= 2: break\n"
             "    time.sleep(1)\n"
             "print(json.dumps(health))\n")
    scraped = compose("run", "--rm", "-T", "--entrypoint", "python", "produce", "-c", probe)
    assert json.loads(scraped.stdout.splitlines()[-1]) == ["up", "up"], scraped.stderr.decode()
    stored = ""
    for _ in range(60):  # the sink commits within its linger; allow for its start-up
        stored = _sql(compose, "SELECT count(*), count(DISTINCT event_id) FROM spanstream_events")
        if stored == "20|20":
            break
        time.sleep(1)
    assert stored == "20|20", compose("logs", "--tail", "40", "sink").stdout.decode()
    people = _sql(compose, "SELECT count(*) FROM spanstream_entities WHERE label = 'person' AND text = 'Angela Merkel'")
    assert people == "20"
    stop = compose("stop", "--timeout", "60")
    assert stop.returncode == 0
    for service, n in (("worker", 2), ("sink", 1)):
        containers = compose("ps", "-q", service).stdout.decode().split()
        codes = [docker.run("inspect", "--format", "{{.State.ExitCode}}", c).stdout.strip() for c in containers]
        assert codes == ["0"] * n, compose("logs", "--tail", "60", service).stdout.decode()[-6000:]  # drained on SIGTERM
