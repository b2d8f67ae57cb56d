"""A secured Kafka, as a user meets it: a broker with a SASL_SSL (SCRAM-SHA-512) listener and an
SSL listener that requires client certificates, certificates made here with openssl. The worker,
`produce` and `tail` are configured only by the documented SPANSTREAM_KAFKA_* variables."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import orjson
import pytest

from devtools.localkafka import KafkaCluster, free_port
from tests.certificates import make_certificates
from tests.kafka_fixtures import create_topic
from tests.worker_harness import ROOT, WorkerProc, consume, pipeline_toml, produce

pytestmark = pytest.mark.kafka

USER, PASSWORD = "alice", "alice-secret-7f3a"


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory):
    base = tmp_path_factory.mktemp("secure-kafka")
    certs = make_certificates(base / "certs")
    cluster = KafkaCluster.create(base / "cluster", size=1,
                                  format_args=["--add-scram", f"SCRAM-SHA-512=[name={USER},password={PASSWORD}]"])
    node = cluster.nodes[0]
    node.listeners = {"SASLSSL": (free_port(), "SASL_SSL"), "MTLS": (free_port(), "SSL")}
    node.extra_properties = [
        "ssl.keystore.type=PEM", f"ssl.keystore.location={certs['keystore']}",
        "ssl.truststore.type=PEM", f"ssl.truststore.location={certs['ca']}",
        "sasl.enabled.mechanisms=SCRAM-SHA-512",
        "listener.name.saslssl.scram-sha-512.sasl.jaas.config="
        "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        "listener.name.mtls.ssl.client.auth=required",
    ]
    cluster.start()
    try:
        yield {"plain": cluster.bootstrap, "sasl_ssl": f"127.0.0.1:{node.listeners['SASLSSL'][0]}",
               "mtls": f"127.0.0.1:{node.listeners['MTLS'][0]}", **certs}
    finally:
        cluster.stop()


def sasl_ssl_env(broker) -> dict:
    return {"SPANSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "SPANSTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "SPANSTREAM_KAFKA_SASL_USERNAME": USER, "SPANSTREAM_KAFKA_SASL_PASSWORD": PASSWORD,
            "SPANSTREAM_KAFKA_SSL_CAFILE": str(broker["ca"])}


def mtls_env(broker) -> dict:
    return {"SPANSTREAM_KAFKA_SECURITY_PROTOCOL": "SSL", "SPANSTREAM_KAFKA_SSL_CAFILE": str(broker["ca"]),
            "SPANSTREAM_KAFKA_SSL_CERTFILE": str(broker["client_cert"]),
            "SPANSTREAM_KAFKA_SSL_KEYFILE": str(broker["client_key"])}


async def _through_worker(broker, listener: str, env: dict, tmp_path: Path) -> WorkerProc:
    topics = {k: await create_topic(broker["plain"], f"{k}-{uuid.uuid4().hex[:8]}") for k in ("in", "out", "dlq")}
    worker = WorkerProc(tmp_path / listener, broker[listener], pipeline_toml("sec", topics["in"], topics["out"],
                                                                             topics["dlq"]),
                        f"g-{uuid.uuid4().hex[:8]}", env=env).start()
    try:
        worker.wait_ready()
        await produce(broker["plain"], topics["in"],
                      [(None, orjson.dumps({"id": f"e{i}", "text": "Ada Lovelace lived in London."}), [])
                       for i in range(20)])
        out = await consume(broker["plain"], [topics["out"]], 20)
        assert len(out) == 20, worker.tail()
    finally:
        assert worker.terminate() == 0, worker.tail()
    return worker


async def test_worker_over_sasl_ssl_with_scram(secure_broker, tmp_path):
    worker = await _through_worker(secure_broker, "sasl_ssl", sasl_ssl_env(secure_broker), tmp_path)
    assert PASSWORD not in worker.log.read_text(errors="replace")


async def test_worker_over_mutual_tls(secure_broker, tmp_path):
    await _through_worker(secure_broker, "mtls", mtls_env(secure_broker), tmp_path)


def test_produce_and_tail_use_the_same_security_settings(secure_broker):
    topic = f"cli-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, **sasl_ssl_env(secure_broker)}
    cli = [sys.executable, "-m", "stream"]
    subprocess.run([*cli, "topics", "create", topic, "--bootstrap", secure_broker["sasl_ssl"]], env=env, cwd=ROOT,
                   check=True, capture_output=True, timeout=60)
    sent = subprocess.run([*cli, "produce", "--topic", topic, "--bootstrap", secure_broker["sasl_ssl"]],
                          input=b'{"text": "one"}\n{"text": "two"}\n', env=env, cwd=ROOT, capture_output=True,
                          timeout=60)
    assert sent.returncode == 0, sent.stderr.decode()
    tail = subprocess.run([*cli, "tail", "--topic", topic, "--from-beginning", "--json", "--max", "2", "--timeout", "20",
                           "--bootstrap", secure_broker["sasl_ssl"]], env=env, cwd=ROOT, capture_output=True,
                          timeout=60)
    assert tail.returncode == 0, tail.stderr.decode()
    assert [orjson.loads(line)["text"] for line in tail.stdout.splitlines()] == ["one", "two"]
    without = subprocess.run([*cli, "tail", "--topic", topic, "--from-beginning", "--max", "1", "--timeout", "5",
                              "--bootstrap", secure_broker["sasl_ssl"]], cwd=ROOT, capture_output=True, timeout=60,
                             env={k: v for k, v in os.environ.items() if not k.startswith("SPANSTREAM_KAFKA_")})
    assert without.returncode != 0  # plaintext against the TLS port: refused, not silently empty
