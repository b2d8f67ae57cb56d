"""The chart against a real kube-apiserver (``make test-apiserver``; not in ``make test``, the
server's build takes ~15-20 min on 2 cores the first time): every render is applied with
``--dry-run=server`` into a namespace that enforces Pod Security "restricted", after the vendored
KEDA and prometheus-operator CRDs are installed for real, so the server validates the CRD objects
too. Any warning (PodSecurity, unknown field) fails the check."""

from __future__ import annotations

import uuid

import pytest

from devtools.kubeapi import ApiServer
from tests.deploy.test_chart import ALL_FEATURES, CRDS, render

RENDERS = {"default": None, "all-features": ALL_FEATURES,
           "serve-hpa": {"mode": "serve", "autoscaling": {"enabled": True}}}


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    server = ApiServer(tmp_path_factory.mktemp("kube")).start()
    try:
        for crd in sorted(CRDS.glob("*.yaml")):
            server.kubectl("apply", "--server-side", "-f", str(crd))
        for crd in ("scaledobjects.keda.sh", "servicemonitors.monitoring.coreos.com"):
            server.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("name", list(RENDERS))
def test_the_api_server_accepts_the_render_under_pod_security_restricted(api, tmp_path, name):
    render(tmp_path, RENDERS[name])
    ns = f"nlp-{uuid.uuid4().hex[:6]}"
    api.kubectl("create", "namespace", ns)
    api.kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted",
                "pod-security.kubernetes.io/warn=restricted")
    proc = api.kubectl("-n", ns, "apply", "--dry-run=server", "-f", str(tmp_path / "rendered.yaml"), check=False)
    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stderr, proc.stderr
    print(f"{name}: {proc.stdout.strip()}")


def test_the_api_server_refuses_a_pod_that_breaks_restricted(api, tmp_path):
    """Negative control: without the chart's securityContext the same namespace refuses the pods."""
    render(tmp_path, {"podSecurityContext": {"seccompProfile": None}})  # writes rendered.yaml
    ns = f"nlp-{uuid.uuid4().hex[:6]}"
    api.kubectl("create", "namespace", ns)
    api.kubectl("label", "namespace", ns, "pod-security.kubernetes.io/warn=restricted")
    proc = api.kubectl("-n", ns, "apply", "--dry-run=server", "-f", str(tmp_path / "rendered.yaml"), check=False)
    assert "would violate PodSecurity" in proc.stderr, proc.stderr
