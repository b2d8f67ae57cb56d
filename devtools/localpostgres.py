"""A private PostgreSQL for tests and the demo, from Debian's ``postgresql`` package: ``initdb`` in a
scratch folder, the server on a loopback port (TCP only, trust authentication for one role), stopped
at the end. PostgreSQL refuses to run as root, so as root the cluster belongs to the package's
``postgres`` user.

    from devtools.localpostgres import LocalPostgres
    with LocalPostgres(folder) as pg:
        pg.dsn   # postgresql://spanstream@127.0.0.1:PORT/spanstream

With ``tls=ServerTls(cert, key, ca)`` TCP clients must use TLS and present a certificate signed by
``ca`` whose CN is the role (``hostssl … cert``; plaintext TCP is rejected); the admin tools here
go through the Unix socket in the folder.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import NamedTuple

ROLE = "spanstream"


class ServerTls(NamedTuple):
    cert: Path   # the server's certificate (PEM)
    key: Path    # its private key (PEM)
    ca: Path     # the CA that client certificates must chain to


def binaries() -> Path:
    """The newest ``/usr/lib/postgresql/<major>/bin`` (Debian's layout)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise RuntimeError("PostgreSQL is not installed (Debian package 'postgresql'; make test-deps installs it)")
    return found[-1].parent


def scratch() -> Path:
    """A fresh folder under the system temp directory that the ``postgres`` user can reach (pytest's
    own temp folders are private to root)."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="spanstream-pg-"))
    folder.chmod(0o755)
    return folder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalPostgres:
    """``folder`` must be reachable by the ``postgres`` user when run as root (``scratch()`` makes one)."""

    def __init__(self, folder: Path, port: int | None = None, tls: ServerTls | None = None):
        self.folder = Path(folder)
        self.tls = tls
        self.data = self.folder / "data"
        self.port = port or _free_port()
        self.bin = binaries()
        self.proc: subprocess.Popen | None = None
        self._user = pwd.getpwnam("postgres") if os.geteuid() == 0 else None

    @property
    def dsn(self) -> str:
        return f"postgresql://{ROLE}@127.0.0.1:{self.port}/{ROLE}"

    def _demote(self):
        if self._user is None:
            return None
        uid, gid = self._user.pw_uid, self._user.pw_gid

        def demote() -> None:
            os.setgid(gid)
            os.setuid(uid)
        return demote

    def _own(self, path: Path) -> None:
        if self._user is not None:
            for p in [path, *path.rglob("*")]:
                os.chown(p, self._user.pw_uid, self._user.pw_gid)

    def init(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._own(self.folder)
        if not (self.data / "PG_VERSION").exists():
            done = subprocess.run([str(self.bin / "initdb"), "-D", str(self.data), "-U", ROLE, "-A", "trust",
                                   "--encoding=UTF8", "--locale=C.UTF-8"], capture_output=True, text=True,
                                  preexec_fn=self._demote(), cwd="/")
            if done.returncode != 0:
                raise RuntimeError(f"initdb failed ({done.returncode}): {done.stderr.strip()[-1500:]}")
            if self.tls is not None:
                (self.data / "pg_hba.conf").write_text(
                    "local all all trust\nhostssl all all 127.0.0.1/32 cert\nhostnossl all all 0.0.0.0/0 reject\n")

    def _tls_options(self) -> list[str]:
        """The server's key must be private to the server's user: copies owned by it, mode 0600."""
        if self.tls is None:
            return []
        folder = self.folder / "server-tls"
        folder.mkdir(exist_ok=True)
        copies = {}
        for name, src in self.tls._asdict().items():
            dest = folder / f"{name}.pem"
            shutil.copyfile(src, dest)
            dest.chmod(0o600)
            copies[name] = dest
        self._own(folder)
        return ["-c", "ssl=on", "-c", f"ssl_cert_file={copies['cert']}", "-c", f"ssl_key_file={copies['key']}",
                "-c", f"ssl_ca_file={copies['ca']}"]

    def start(self, timeout: float = 30) -> "LocalPostgres":
        self.init()
        log = open(self.folder / "postgres.log", "ab")
        self.proc = subprocess.Popen(
            [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port), "-c", "listen_addresses=127.0.0.1",
             "-c", f"unix_socket_directories={self.folder}", "-c", "fsync=on", "-c", "max_connections=50",
             *self._tls_options()],
            stdout=log, stderr=subprocess.STDOUT, preexec_fn=self._demote(), cwd="/")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.proc.returncode}: {self.log_tail()}")
            ready = subprocess.run([str(self.bin / "pg_isready"), "-h", str(self.folder), "-p", str(self.port)],
                                   capture_output=True)
            if ready.returncode == 0:
                break
            time.sleep(0.1)
        else:
            raise TimeoutError(f"postgres did not accept connections in {timeout} s: {self.log_tail()}")
        created = subprocess.run([str(self.bin / "psql"), "-h", str(self.folder), "-p", str(self.port), "-U", ROLE,
                                  "-d", "postgres", "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{ROLE}'"],
                                 capture_output=True, text=True, check=True)
        if created.stdout.strip() != "1":
            subprocess.run([str(self.bin / "createdb"), "-h", str(self.folder), "-p", str(self.port), "-U", ROLE, ROLE],
                           check=True, capture_output=True)
        return self

    def stop(self, mode: str = "fast") -> None:
        """``fast`` (SIGINT: clean shutdown) or ``immediate`` (SIGQUIT: a crash, recovered at start)."""
        if self.proc is None:
            return
        self.proc.send_signal({"fast": signal.SIGINT, "immediate": signal.SIGQUIT}[mode])
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join((self.folder / "postgres.log").read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> "LocalPostgres":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
