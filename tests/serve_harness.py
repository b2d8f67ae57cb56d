"""Start `spanstream serve` processes for HTTP tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from devtools.localkafka import free_port

ROOT = Path(__file__).resolve().parent.parent
TINY_MODEL = ROOT / "tests" / "fixtures" / "tiny-gliner"


@dataclass
class ServeProc:
    env: dict = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    model: Path = TINY_MODEL
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> "ServeProc":
        self.proc = subprocess.Popen([sys.executable, "-m", "stream", "serve", "--model", str(self.model),
                                      "--host", "127.0.0.1", "--port", str(self.port)],
                                     env={**os.environ, **self.env}, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, cwd=ROOT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(self.proc.stderr.read().decode())
            try:
                if request(self.url + "/readyz")[0] == 200:
                    return self
            except OSError:
                time.sleep(0.2)
        raise TimeoutError("serve did not become ready")

    def stop(self) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def request(url: str, body=None, raw: bytes | None = None, timeout: float = 30) -> tuple[int, dict, bytes]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()
