"""`spanstream config`: the effective settings a pod runs with, secrets masked, errors name the key."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _config(*args, **env):
    return subprocess.run([sys.executable, "-m", "stream", "config", *args], capture_output=True, cwd=ROOT,
                          timeout=60, env={**os.environ, **env})


def test_prints_effective_settings_and_pipelines_with_secrets_masked():
    proc = _config("--config", "docker/pipelines.example.toml", "--describe", SPANSTREAM_MAX_BATCH_ROWS="8",
                   SPANSTREAM_KAFKA_SECURITY_PROTOCOL="SASL_SSL", SPANSTREAM_KAFKA_SASL_MECHANISM="SCRAM-SHA-512",
                   SPANSTREAM_KAFKA_SASL_USERNAME="svc", SPANSTREAM_KAFKA_SASL_PASSWORD="hunter2-secret")
    assert proc.returncode == 0, proc.stderr
    assert b"hunter2-secret" not in proc.stdout
    data = json.loads(proc.stdout)
    assert data["settings"]["max_batch_rows"] == 8 and data["settings"]["kafka_sasl_password"] == "**********"
    assert data["pipelines"][0]["name"] == "news"
    documented = {r["env"]: r["description"] for r in data["reference"]}
    assert documented["SPANSTREAM_MAX_BATCH_TOKENS"] and documented["SPANSTREAM_MAX_QUEUE_TOKENS"]


def test_an_invalid_value_names_its_key():
    proc = _config(SPANSTREAM_MAX_BATCH_ROWS="0")
    assert proc.returncode == 2 and b"SPANSTREAM_MAX_BATCH_ROWS" in proc.stderr


def test_secrets_read_from_mounted_files_and_stay_masked(tmp_path, monkeypatch):
    from stream.config import load_settings

    secret = tmp_path / "sasl"
    secret.write_text("from-a-file\n")
    monkeypatch.setenv("SPANSTREAM_KAFKA_SASL_PASSWORD_FILE", str(secret))
    assert load_settings().kafka_sasl_password.get_secret_value() == "from-a-file"
    monkeypatch.setenv("SPANSTREAM_KAFKA_SASL_PASSWORD_FILE", str(tmp_path / "missing"))
    try:
        load_settings()
    except Exception as exc:
        assert "SPANSTREAM_KAFKA_SASL_PASSWORD_FILE" in str(exc)
    else:
        raise AssertionError("an unreadable secret file was ignored")
