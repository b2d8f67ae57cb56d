"""The Helm chart, checked offline with the real tools: ``helm lint --strict``, ``helm template``
with the default and an all-features values file, every rendered object validated with
``kubernetes-validate --strict`` (Kubernetes 1.33 schemas) and the CRD objects (KEDA
ScaledObject, ServiceMonitor) against their vendored CRD schemas (``crds/``); values the chart
must refuse are refused. helm comes from ``make helm`` (``SPANSTREAM_HELM``); a missing helm
fails the suite, it never skips."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "spanstream"
CRDS = Path(__file__).resolve().parent / "crds"
K8S_VERSION = "1.33.0"
ALL_FEATURES = {
    "mode": "worker", "replicaCount": 3,
    "kafka": {"securityProtocol": "SASL_SSL", "saslMechanism": "SCRAM-SHA-512", "saslSecretName": "kafka-user",
              "staticMembership": True, "tls": {"caSecretName": "kafka-ca", "clientSecretName": "kafka-client"}},
    "model": {"variant": "int8", "path": "/models/gliner", "inferenceThreads": 2},
    "keda": {"enabled": True, "topic": "texts", "partitions": 6, "maxReplicas": 6},
    "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/x"}},
    "priorityClassName": "batch-high",
    "podLabels": {"team": "nlp"},
    "extraEnv": [{"name": "SPANSTREAM_MAX_BATCH_WAIT_MS", "value": "10"}],
    "imagePullSecrets": [{"name": "registry"}],
}


def helm() -> str:
    path = os.environ.get("SPANSTREAM_HELM") or shutil.which("helm")
    assert path and Path(path).exists(), "helm not found: run `make helm` (make test builds it) or set SPANSTREAM_HELM"
    return path


def _values_file(tmp_path: Path, values: dict) -> Path:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def render(tmp_path: Path, values: dict | None = None) -> list[dict]:
    args = [helm(), "template", "rel", str(CHART), "--namespace", "nlp"]
    if values:
        args += ["-f", str(_values_file(tmp_path, values))]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    (tmp_path / "rendered.yaml").write_text(proc.stdout)
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def refused(tmp_path: Path, values: dict) -> str:
    proc = subprocess.run([helm(), "template", "rel", str(CHART), "-f", str(_values_file(tmp_path, values))],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0, "helm rendered values it must refuse"
    return proc.stderr


def kubernetes_validate(path: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "kubernetes-validate"
    return subprocess.run([str(exe), "-k", K8S_VERSION, "--strict", str(path)], capture_output=True, text=True,
                          timeout=300)


def crd_validator(name: str) -> Draft202012Validator:
    crd = yaml.safe_load((CRDS / name).read_text())
    version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
    return Draft202012Validator(version["schema"]["openAPIV3Schema"])


def by_kind(docs: list[dict]) -> dict[str, dict]:
    return {d["kind"]: d for d in docs}


@pytest.mark.parametrize("values", [None, ALL_FEATURES, {"mode": "sink", "sink": {"topics": ["entities"],
                                                                                  "dsnSecretName": "pg"}}],
                         ids=["default", "all-features", "sink"])
def test_lint_strict(tmp_path, values):
    args = [helm(), "lint", "--strict", str(CHART)]
    if values:
        args += ["-f", str(_values_file(tmp_path, values))]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


SINK = {"mode": "sink", "sink": {"topics": ["entities"], "dsnSecretName": "pg"}, "keda": {"enabled": True}}


SERVE_RATE = {"mode": "serve", "autoscaling": {"enabled": True, "requestRate": {"enabled": True, "targetPerPod": "15"}}}


@pytest.mark.parametrize("values", [None, ALL_FEATURES, {"mode": "serve", "autoscaling": {"enabled": True}}, SINK,
                                    SERVE_RATE], ids=["default", "all-features", "serve-hpa", "sink-keda", "serve-rate"])
def test_rendered_objects_are_valid_kubernetes(tmp_path, values):
    docs = render(tmp_path, values)
    proc = kubernetes_validate(tmp_path / "rendered.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    crds = {"ScaledObject": "keda.sh_scaledobjects.yaml", "ServiceMonitor": "monitoring.coreos.com_servicemonitors.yaml"}
    unvalidated = [line for line in (proc.stdout + proc.stderr).splitlines() if "Couldn't find schema" in line]
    assert len(unvalidated) == sum(d["kind"] in crds for d in docs), unvalidated  # only the CRD kinds
    for doc in docs:
        if doc["kind"] in crds:  # kubernetes-validate skips CRD kinds: check them against their CRD
            errors = list(crd_validator(crds[doc["kind"]]).iter_errors(doc))
            assert not errors, [e.message for e in errors]


def test_pods_pass_pod_security_restricted(tmp_path):
    pod = by_kind(render(tmp_path))["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]["securityContext"]
    assert container["allowPrivilegeEscalation"] is False and container["capabilities"]["drop"] == ["ALL"]
    assert container["readOnlyRootFilesystem"] is True
    assert pod["automountServiceAccountToken"] is False


def test_all_features_wiring(tmp_path):
    objs = by_kind(render(tmp_path, ALL_FEATURES))
    deploy = objs["Deployment"]
    assert "replicas" not in deploy["spec"]  # KEDA owns the replica count
    pod = deploy["spec"]["template"]
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["SPANSTREAM_KAFKA_SSL_CAFILE"] == "/etc/spanstream/kafka-ca/ca.crt"
    assert env["SPANSTREAM_KAFKA_SSL_KEYFILE"] == "/etc/spanstream/kafka-client/tls.key"
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["kafka-client"]["secret"]["secretName"] == "kafka-client"
    assert "prometheus.io/scrape" not in pod["metadata"]["annotations"]  # the ServiceMonitor scrapes: no double scrape
    assert objs["ServiceMonitor"]["metadata"]["labels"]["release"] == "prometheus"
    assert objs["ServiceMonitor"]["spec"]["endpoints"][0]["scrapeTimeout"] == "10s"
    so = objs["ScaledObject"]["spec"]
    assert so["maxReplicaCount"] <= ALL_FEATURES["keda"]["partitions"]
    assert so["triggers"][0]["metadata"]["consumerGroup"] == "spanstream"
    assert pod["spec"]["priorityClassName"] == "batch-high"
    assert pod["spec"]["serviceAccountName"] == objs["ServiceAccount"]["metadata"]["name"]
    spread = pod["spec"]["topologySpreadConstraints"][0]
    assert spread["labelSelector"]["matchLabels"]["app.kubernetes.io/instance"] == "rel"
    grace = pod["spec"]["terminationGracePeriodSeconds"]
    assert float(env["SPANSTREAM_DRAIN_TIMEOUT_S"]) <= grace - 10


def test_the_hpa_scales_on_cpu_and_request_rate(tmp_path):
    """The request rate is a Pods metric (per-pod average) served by a metrics adapter from
    spanstream_http_requests_total; CPU stays a metric beside it."""
    metrics = by_kind(render(tmp_path, SERVE_RATE))["HorizontalPodAutoscaler"]["spec"]["metrics"]
    assert [m["type"] for m in metrics] == ["Resource", "Pods"]
    pods = metrics[1]["pods"]
    assert pods["metric"]["name"] == "spanstream_http_requests_per_second"
    assert pods["target"] == {"type": "AverageValue", "averageValue": "15"}
    default = by_kind(render(tmp_path, {"mode": "serve", "autoscaling": {"enabled": True}}))
    assert [m["type"] for m in default["HorizontalPodAutoscaler"]["spec"]["metrics"]] == ["Resource"]


def test_sink_mode_wiring(tmp_path):
    """mode: sink runs `spanstream sink` on its own group and topics, the DSN a mounted secret file
    (never an environment value), no pipelines or model settings; KEDA scales it on its own lag."""
    values = {"mode": "sink", "sink": {"topics": ["entities", "extractions"], "deadLetterTopic": "sink-dlq",
                                       "dsnSecretName": "pg", "dsnSecretKey": "url"},
              "keda": {"enabled": True, "topic": "entities"}}
    objs = by_kind(render(tmp_path, values))
    pod = objs["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert container["args"] == ["sink"]
    assert env["SPANSTREAM_SINK_TOPICS"] == "entities,extractions" and env["SPANSTREAM_SINK_GROUP_ID"] == "spanstream-sink"
    assert env["SPANSTREAM_SINK_DEAD_LETTER_TOPIC"] == "sink-dlq"
    assert env["SPANSTREAM_SINK_DSN_FILE"] == "/etc/spanstream/sink/dsn" and "SPANSTREAM_SINK_DSN" not in env
    assert "SPANSTREAM_CONFIG" not in env and "SPANSTREAM_MODEL_VARIANT" not in env
    volume = {v["name"]: v for v in pod["volumes"]}["sink-dsn"]["secret"]
    assert volume["secretName"] == "pg" and volume["items"] == [{"key": "url", "path": "dsn"}]
    assert objs["ScaledObject"]["spec"]["triggers"][0]["metadata"]["consumerGroup"] == "spanstream-sink"


def test_sink_tls_files_are_mounted_for_the_dsn_to_name(tmp_path):
    """sink.tlsSecretName mounts a CA and a client certificate where the documented DSN's
    sslrootcert / sslcert / sslkey point, readable by the pod's group only (libpq accepts a
    root-owned key with no world access)."""
    values = {"mode": "sink", "sink": {"topics": ["entities"], "dsnSecretName": "pg", "tlsSecretName": "pg-tls"}}
    pod = by_kind(render(tmp_path, values))["Deployment"]["spec"]["template"]["spec"]
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["sink-tls"] == {"name": "sink-tls", "mountPath": "/etc/spanstream/sink-tls", "readOnly": True}
    volume = {v["name"]: v for v in pod["volumes"]}["sink-tls"]["secret"]
    assert volume == {"secretName": "pg-tls", "defaultMode": 0o440}
    values_doc = (ROOT / "helm" / "spanstream" / "values.yaml").read_text()
    for name in ("sslrootcert=/etc/spanstream/sink-tls/ca.crt", "sslcert=/etc/spanstream/sink-tls/tls.crt",
                 "sslkey=/etc/spanstream/sink-tls/tls.key"):
        assert name in values_doc
    without = by_kind(render(tmp_path, {"mode": "sink", "sink": {"topics": ["entities"], "dsnSecretName": "pg"}}))
    assert "sink-tls" not in {v["name"] for v in without["Deployment"]["spec"]["template"]["spec"]["volumes"]}


@pytest.mark.parametrize("values, needle", [
    ({"replicaCount": "two"}, "replicaCount"),
    ({"mode": "batch"}, "mode"),
    ({"kafka": {"securityProtocol": "TLS"}}, "securityProtocol"),
    ({"terminationGracePeriodSeconds": 5}, "terminationGracePeriodSeconds"),
    ({"unknownKey": 1}, "unknownKey"),
    ({"keda": {"enabled": True, "partitions": 4, "maxReplicas": 8}}, "exceeds keda.partitions"),
    ({"keda": {"enabled": True}, "autoscaling": {"enabled": True}}, "enable one"),
    ({"keda": {"enabled": True}, "mode": "serve"}, "mode: worker or sink"),
    ({"mode": "sink", "sink": {"topics": ["entities"]}}, "dsnSecretName"),
    ({"mode": "sink", "sink": {"dsnSecretName": "db"}}, "topics"),
    ({"serviceMonitor": {"scrapeTimeout": "ten seconds"}}, "scrapeTimeout"),
])
def test_bad_values_are_refused(tmp_path, values, needle):
    assert needle in refused(tmp_path, values)


def test_the_validators_bite(tmp_path):
    """Negative controls: what the chart's schema lets through, kubernetes-validate and the CRD
    schemas still catch."""
    render(tmp_path, {"podSecurityContext": {"runAsUser": "root"}})
    proc = kubernetes_validate(tmp_path / "rendered.yaml")
    assert proc.returncode != 0 and "runAsUser" in proc.stdout + proc.stderr
    docs = render(tmp_path, {"serviceMonitor": {"enabled": True}})
    monitor = by_kind(docs)["ServiceMonitor"]
    monitor["spec"]["endpoints"][0]["scheme"] = "gopher"
    assert list(crd_validator("monitoring.coreos.com_servicemonitors.yaml").iter_errors(monitor))
    scaled = by_kind(render(tmp_path, {"keda": {"enabled": True}}))["ScaledObject"]
    scaled["spec"]["triggers"][0]["metadata"] = "not a map"
    assert list(crd_validator("keda.sh_scaledobjects.yaml").iter_errors(scaled))
