"""A real Kubernetes API server on loopback, built from Go modules (no kind, no registry images).

``make test-apiserver`` builds ``kube-apiserver`` (from ``k8s.io/kubernetes``, its staging modules
re-pointed at their published versions) and ``etcd`` into ``.tools/`` (cached; ~15-20 min on 2
cores the first time), starts both on free loopback ports with a static admin token, and runs
``tests/deploy/apiserver_check.py``: the chart's renders applied with ``--dry-run=server`` (admission,
defaulting and schema validation by the server itself, CRD objects against the installed CRDs, Pod
Security "restricted" enforced on the namespace). No controllers or kubelet run, so nothing is
scheduled. Commands follow ``../shared/notes/deploy-tooling.md`` §5.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from devtools.localkafka import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
TOOLS = REPO_ROOT / ".tools"
KUBERNETES_VERSION = "1.34.4"
ETCD_VERSION = "3.6.16"
TOKEN = "spanstream-admin-token"


def _go(args: list[str], cwd: Path) -> None:
    env = {**os.environ, "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
    proc = subprocess.run(["go", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"go {' '.join(args)} failed:\n{proc.stderr[-4000:]}")


def build_apiserver() -> Path:
    out = TOOLS / f"kube-apiserver-v{KUBERNETES_VERSION}" / "kube-apiserver"
    if out.exists():
        return out
    if shutil.which("go") is None:
        raise RuntimeError("kube-apiserver is built with Go; install Go first")
    work = Path(tempfile.mkdtemp(prefix="kas-build-"))
    _go(["mod", "init", "kasbuild"], work)
    info = subprocess.run(["go", "mod", "download", "-json", f"k8s.io/kubernetes@v{KUBERNETES_VERSION}"],
                          cwd=work, capture_output=True, text=True, check=True)
    gomod = Path(json.loads(info.stdout)["GoMod"]).read_text()
    staging = sorted({line.split()[0] for line in gomod.splitlines()
                      if "=> ./staging" in line and line.strip().startswith("k8s.io/")})
    minor = "0." + KUBERNETES_VERSION.split(".", 1)[1]
    for module in staging:
        _go(["mod", "edit", f"-replace={module}={module}@v{minor}"], work)
    _go(["mod", "edit", f"-require=k8s.io/kubernetes@v{KUBERNETES_VERSION}"], work)
    (work / "tools.go").write_text('//go:build tools\npackage tools\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver"\n')
    _go(["mod", "tidy", "-e"], work)
    out.parent.mkdir(parents=True, exist_ok=True)
    _go(["build", "-o", str(out), "k8s.io/kubernetes/cmd/kube-apiserver"], work)
    shutil.rmtree(work, ignore_errors=True)
    return out


def build_etcd() -> Path:
    out = TOOLS / f"etcd-v{ETCD_VERSION}" / "etcd"
    if out.exists():
        return out
    work = Path(tempfile.mkdtemp(prefix="etcd-build-"))
    _go(["mod", "init", "etcdbuild"], work)
    (work / "tools.go").write_text('//go:build tools\npackage tools\nimport _ "go.etcd.io/etcd/server/v3"\n')
    _go(["get", f"go.etcd.io/etcd/server/v3@v{ETCD_VERSION}"], work)
    _go(["mod", "tidy", "-e"], work)
    out.parent.mkdir(parents=True, exist_ok=True)
    _go(["build", "-o", str(out), "go.etcd.io/etcd/server/v3"], work)
    shutil.rmtree(work, ignore_errors=True)
    return out


@dataclass
class ApiServer:
    """etcd + kube-apiserver on loopback; ``kubectl(...)`` talks to it as an admin."""

    workdir: Path
    port: int = 0
    processes: tuple = ()

    def start(self, timeout: float = 180) -> "ApiServer":
        if shutil.which("kubectl") is None:
            raise RuntimeError("kubectl not found")
        apiserver, etcd = build_apiserver(), build_etcd()
        self.workdir.mkdir(parents=True, exist_ok=True)
        etcd_client, etcd_peer, self.port = free_port(), free_port(), free_port()
        subprocess.run(["openssl", "genrsa", "-out", str(self.workdir / "sa.key"), "2048"], check=True,
                       capture_output=True)
        (self.workdir / "tokens.csv").write_text(f"{TOKEN},admin,admin,system:masters\n")
        logs = [open(self.workdir / name, "wb") for name in ("etcd.log", "apiserver.log")]  # noqa: SIM115
        e = subprocess.Popen(
            [str(etcd), "--data-dir", str(self.workdir / "etcd-data"),
             "--listen-client-urls", f"http://127.0.0.1:{etcd_client}",
             "--advertise-client-urls", f"http://127.0.0.1:{etcd_client}",
             "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{etcd_peer}",
             "--initial-cluster", f"default=http://127.0.0.1:{etcd_peer}"],
            stdout=logs[0], stderr=subprocess.STDOUT, start_new_session=True)
        a = subprocess.Popen(
            [str(apiserver), f"--etcd-servers=http://127.0.0.1:{etcd_client}", "--bind-address=127.0.0.1",
             "--advertise-address=127.0.0.1", f"--secure-port={self.port}", f"--cert-dir={self.workdir / 'certs'}",
             f"--service-account-key-file={self.workdir / 'sa.key'}",
             f"--service-account-signing-key-file={self.workdir / 'sa.key'}",
             "--service-account-issuer=https://kubernetes.default.svc",
             f"--token-auth-file={self.workdir / 'tokens.csv'}", "--authorization-mode=RBAC",
             "--service-cluster-ip-range=10.96.0.0/24"],
            stdout=logs[1], stderr=subprocess.STDOUT, start_new_session=True)
        self.processes = (a, e)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if a.poll() is not None or e.poll() is not None:
                raise RuntimeError(f"the API server exited:\n{self.log_tail()}")
            if self.kubectl("get", "--raw", "/readyz", check=False).returncode == 0:
                return self
            time.sleep(1)
        raise TimeoutError(f"the API server was not ready in {timeout}s:\n{self.log_tail()}")

    def kubectl(self, *args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess:
        cmd = ["kubectl", "--server", f"https://127.0.0.1:{self.port}", "--token", TOKEN,
               "--insecure-skip-tls-verify", *args]
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {proc.stderr}")
        return proc

    def log_tail(self, lines: int = 30) -> str:
        out = []
        for name in ("etcd.log", "apiserver.log"):
            path = self.workdir / name
            if path.exists():
                out += [f"--- {name}", *path.read_text(errors="replace").splitlines()[-lines:]]
        return "\n".join(out)

    def stop(self) -> None:
        for proc in self.processes:  # kube-apiserver may ignore SIGTERM once etcd is gone: SIGKILL
            proc.kill()
            proc.wait()
