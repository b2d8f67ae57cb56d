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


def test_an_unknown_spanstream_variable_is_refused_with_the_key_named():
    """A typo used to be ignored (the default silently applied) although the README promises validation."""
    proc = _config(SPANSTREAM_MAX_BACTH_ROWS="8")
    assert proc.returncode == 2, proc.stderr
    assert b"SPANSTREAM_MAX_BACTH_ROWS" in proc.stderr and b"did you mean SPANSTREAM_MAX_BATCH_ROWS" in proc.stderr


def test_settings_that_cannot_work_together_are_refused_at_start():
    cases = [({"SPANSTREAM_HEARTBEAT_INTERVAL_S": "12", "SPANSTREAM_SESSION_TIMEOUT_S": "30"},
              b"SPANSTREAM_HEARTBEAT_INTERVAL_S"),
             ({"SPANSTREAM_MAX_QUEUE_TEXTS": "8", "SPANSTREAM_MAX_BATCH_ROWS": "16"}, b"SPANSTREAM_MAX_QUEUE_TEXTS"),
             ({"SPANSTREAM_MAX_QUEUE_TOKENS": "1024", "SPANSTREAM_MAX_BATCH_TOKENS": "4096"},
              b"SPANSTREAM_MAX_QUEUE_TOKENS"),
             ({"SPANSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "SPANSTREAM_KAFKA_SASL_MECHANISM": "PLAIN",
               "SPANSTREAM_KAFKA_SASL_USERNAME": "svc"}, b"SPANSTREAM_KAFKA_SASL_PASSWORD")]
    for env, key in cases:
        proc = _config(**env)
        assert proc.returncode == 2 and key in proc.stderr, (env, proc.stderr)


def test_the_prefetch_buffer_is_sized_by_bytes_and_the_default_bound_follows_memory():
    """faust prefetched 4,096 records per stream whatever their size (4 GiB of 1 MiB records)."""
    from stream.config import PipelineConfig, load_settings
    from stream.kafka.app import prefetch_records

    class P:
        cfg = PipelineConfig(name="p", input_topics=["a"], output_topic="b", dead_letter_topic="c", labels=["x"])

    settings = load_settings(max_inflight_bytes=64 * 2**20)
    assert prefetch_records(settings, [P()]) == 32  # 32 MiB of 1 MiB records
    assert 16 * 2**20 <= load_settings().inflight_bytes <= 512 * 2**20


def test_the_memory_limit_is_the_process_own_cgroup_and_its_parents(tmp_path):
    """On a host (a systemd unit with MemoryMax, a nested cgroup) the limit is in the process's own
    group, not in the mount's root files, which say "unlimited" there: the default byte bound was
    then a quarter of the machine's RAM."""
    from stream.config import memory_limit

    root = tmp_path / "cgroup"
    (root / "memory" / "pods" / "worker").mkdir(parents=True)
    (root / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    (root / "memory" / "pods" / "memory.limit_in_bytes").write_text(f"{3 * 2**30}\n")
    (root / "memory" / "pods" / "worker" / "memory.limit_in_bytes").write_text(f"{2**30}\n")
    v1 = tmp_path / "v1"
    v1.write_text("5:cpu:/pods/worker\n4:memory:/pods/worker\n0::/\n")
    assert memory_limit(str(root), str(v1)) == 2**30
    (root / "memory" / "pods" / "memory.limit_in_bytes").write_text(f"{2**29}\n")  # a parent's smaller limit wins
    assert memory_limit(str(root), str(v1)) == 2**29

    v2root = tmp_path / "v2"
    (v2root / "kubepods" / "pod1").mkdir(parents=True)
    (v2root / "cgroup.controllers").write_text("cpu memory\n")
    (v2root / "kubepods" / "memory.max").write_text("max\n")
    (v2root / "kubepods" / "pod1" / "memory.max").write_text(f"{768 * 2**20}\n")
    v2 = tmp_path / "v2-membership"
    v2.write_text("0::/kubepods/pod1\n")
    assert memory_limit(str(v2root), str(v2)) == 768 * 2**20
    v2.write_text("0::/\n")  # a container's namespace: its group is the root, with no limit file here
    assert memory_limit(str(v2root), str(v2)) == os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def test_numpy_blas_threads_follow_the_inference_threads():
    """OpenBLAS starts one thread per core of the node; a 2-CPU pod on a 64-core node ran every
    head matmul on 64 threads. The runtime caps it like onnxruntime's pool."""
    code = ("from stream.config import load_settings; from stream.runtime import build_runtime; "
            "from threadpoolctl import threadpool_info; "
            "build_runtime(load_settings(model_path='tests/fixtures/tiny-gliner', http_enabled=False)); "
            "print(max(i['num_threads'] for i in threadpool_info()))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=ROOT, timeout=120,
                          env={**os.environ, "SPANSTREAM_INFERENCE_THREADS": "1", "OPENBLAS_NUM_THREADS": ""})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == b"1"
