"""Build and run the spanstream image on a machine without Docker Hub.

``python -m devtools image build`` (``make image``) makes sure a Docker engine answers (it starts a
private ``dockerd`` with no bridge and no iptables when none does: the host's network is left
alone, so builds and containers use ``--network host``), makes sure ``python:3.11-slim`` exists
(pulled when a registry serves it, otherwise a stand-in built from Debian packages with
``debootstrap``; see ``devtools/standin/python.Dockerfile``) and builds ``docker/Dockerfile``
unchanged. The deploy tests use the same functions. Everything lives under ``$TMPDIR/spanstream-deploy``
(``SPANSTREAM_DEPLOY_DIR``), so a second run reuses the daemon's image cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Docker", "build_image", "ensure_base", "ensure_daemon"]

REPO_ROOT = Path(__file__).resolve().parent.parent
STANDIN = Path(__file__).resolve().parent / "standin"
BASE_IMAGE = "python:3.11-slim"
DEBIAN_IMAGE = "debian:bookworm-slim"
DEFAULT_TAG = "spanstream:test"


def state_dir() -> Path:
    return Path(os.environ.get("SPANSTREAM_DEPLOY_DIR") or Path(tempfile.gettempdir()) / "spanstream-deploy")


@dataclass(frozen=True)
class Docker:
    """The docker CLI pointed at one engine (``DOCKER_HOST``)."""

    host: str
    started_here: bool = False
    "True when ``ensure_daemon`` started this engine (``stop_daemon`` then stops it)."

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host}

    def run(self, *args: str, check: bool = True, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
        proc = subprocess.run(["docker", *args], env=self.env, capture_output=True, text=True, timeout=timeout, **kw)
        if check and proc.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args[:3])} … failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        return proc

    def answers(self) -> bool:
        try:
            return self.run("version", "--format", "{{.Server.Version}}", check=False, timeout=15).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def has_image(self, ref: str) -> bool:
        return self.run("image", "inspect", ref, check=False).returncode == 0


def ensure_daemon() -> Docker:
    """An engine that answers: ``DOCKER_HOST`` if set, else a private dockerd started here (root)."""
    if os.environ.get("DOCKER_HOST"):
        docker = Docker(os.environ["DOCKER_HOST"])
        if not docker.answers():
            raise RuntimeError(f"DOCKER_HOST={docker.host} does not answer `docker version`")
        return docker
    base = state_dir() / "docker"
    docker = Docker(f"unix://{base}/docker.sock")
    if docker.answers():
        return docker
    if shutil.which("dockerd") is None:
        raise RuntimeError("no Docker engine: install Debian's docker.io (make test-deps does) or set DOCKER_HOST")
    for sub in ("root", "exec"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    log = open(base / "dockerd.log", "ab")  # noqa: SIM115 - handed to the daemon
    subprocess.Popen(
        ["dockerd", "--data-root", str(base / "root"), "--exec-root", str(base / "exec"),
         "--pidfile", str(base / "dockerd.pid"), "-H", docker.host,
         "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false",
         "--storage-driver=overlay2", "--containerd-namespace=spanstream-deploy",
         "--containerd-plugins-namespace=spanstream-deploy-plugins"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if docker.answers():
            return Docker(docker.host, started_here=True)
        time.sleep(0.5)
    raise RuntimeError(f"dockerd did not answer within 60 s; see {base / 'dockerd.log'}")


def stop_daemon(timeout: float = 30) -> None:
    """Stop the private dockerd (its image cache stays in the data root for the next start)."""
    pidfile = state_dir() / "docker" / "dockerd.pid"
    if not pidfile.exists():
        return
    pid = pidfile.read_text().strip()
    subprocess.run(["kill", pid], check=False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.2)


def _debian_mirror() -> str:
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for line in path.read_text().splitlines():
            if line.startswith("URIs:"):
                return line.split()[1]
    return "http://deb.debian.org/debian"


def _remove_rootfs(rootfs: Path) -> None:
    """Remove a debootstrap tree, first unmounting what a killed debootstrap left mounted in it
    (its /proc: rmtree cannot remove a mounted proc, and the next debootstrap then fails)."""
    try:
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        mounts = []
    for mount in sorted((m for m in mounts if m == str(rootfs) or m.startswith(f"{rootfs}/")), reverse=True):
        subprocess.run(["umount", "-l", mount], check=False)
    shutil.rmtree(rootfs, ignore_errors=True)


def _debian_standin(docker: Docker, log) -> None:
    """``debian:bookworm-slim`` stand-in: a debootstrap minbase, trimmed like the official slim image."""
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap not found: install Debian's debootstrap (make test-deps does)")
    rootfs = state_dir() / "rootfs"
    _remove_rootfs(rootfs)
    subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(rootfs), _debian_mirror()],
                   stdout=log, stderr=subprocess.STDOUT, check=True, timeout=900)
    (rootfs / "etc/dpkg/dpkg.cfg.d/slim").write_text(
        "path-exclude /usr/share/doc/*\npath-exclude /usr/share/man/*\npath-exclude /usr/share/info/*\n"
        "path-exclude /usr/share/locale/*\n")
    (rootfs / "etc/apt/apt.conf.d/99slim").write_text('APT::Install-Recommends "false";\n')
    for pattern in ("var/cache/apt/*.bin", "var/cache/apt/archives/*.deb", "var/lib/apt/lists/*",
                    "usr/share/doc/*", "usr/share/man/*", "usr/share/info/*"):
        for path in rootfs.glob(pattern):
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    subprocess.run(["docker", "import", "--change", 'CMD ["bash"]',
                    "--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "-", DEBIAN_IMAGE], stdin=tar.stdout, env=docker.env, stdout=log, stderr=subprocess.STDOUT,
                   check=True, timeout=600)
    tar.wait()
    _remove_rootfs(rootfs)


def ensure_base(docker: Docker, log=None) -> dict[str, str]:
    """Make the base images resolvable (``debian:bookworm-slim``, then ``python:3.11-slim``):
    already there, pulled, or a stand-in built here. Returns how each was had."""
    log = log or subprocess.DEVNULL
    how = {}
    for ref in (DEBIAN_IMAGE, BASE_IMAGE):
        if docker.has_image(ref):
            how[ref] = "present"
            continue
        try:
            if docker.run("pull", ref, check=False, timeout=120).returncode == 0:
                how[ref] = "pulled"
                continue
        except subprocess.TimeoutExpired:
            pass
        _debian_standin(docker, log) if ref == DEBIAN_IMAGE else _python_standin(docker, log)
        how[ref] = "stand-in"
    return how


def _python_standin(docker: Docker, log) -> None:
    with tempfile.TemporaryDirectory() as ctx:
        ca = Path(ctx) / "ca"
        ca.mkdir()
        for crt in Path("/usr/local/share/ca-certificates").glob("*.crt"):
            shutil.copy(crt, ca / crt.name)
        shutil.copy(STANDIN / "python.Dockerfile", Path(ctx) / "Dockerfile")
        subprocess.run(["docker", "build", "--network", "host", "-t", BASE_IMAGE, ctx], env=docker.env,
                       stdout=log, stderr=subprocess.STDOUT, check=True, timeout=1200)


def build_image(docker: Docker, tag: str = DEFAULT_TAG, log=None, dockerfile: str = "docker/Dockerfile") -> None:
    """``docker build`` of a Dockerfile in ``docker/`` from the repository root, as users run it
    (plus ``--network host``, see above)."""
    log = log or subprocess.DEVNULL
    proc = subprocess.run(["docker", "build", "--network", "host", "-f", dockerfile, "-t", tag, "."],
                          cwd=REPO_ROOT, env=docker.env, stdout=log, stderr=subprocess.STDOUT, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"docker build -f {dockerfile} failed ({proc.returncode}); see the build log")


def image_size_mb(docker: Docker, tag: str = DEFAULT_TAG) -> float:
    return int(docker.run("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip()) / 1e6


def add_parser(sub) -> None:
    parser = sub.add_parser("image", help="build the spanstream image (private dockerd and stand-in base if needed)")
    parser.add_argument("action", choices=["build", "daemon-down"])
    parser.add_argument("--tag", default=DEFAULT_TAG)
    parser.set_defaults(func=_main)


def _main(args) -> int:
    if args.action == "daemon-down":
        stop_daemon()
        return 0
    import sys

    docker = ensure_daemon()
    print(f"DOCKER_HOST={docker.host}")
    started = time.monotonic()
    for ref, how in ensure_base(docker, log=sys.stdout.buffer).items():
        print(f"{ref}: {how}")
    build_image(docker, args.tag, log=sys.stdout.buffer)
    print(f"{args.tag}: {image_size_mb(docker, args.tag):.0f} MB, built in {time.monotonic() - started:.0f} s")
    return 0
