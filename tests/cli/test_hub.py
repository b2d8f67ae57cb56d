"""``hf://org/name`` model paths work in every command, not only ``extract``.

``huggingface_hub`` comes with ``tokenizers``. No hub is reachable here, so the test fills a Hugging Face cache the way ``snapshot_download``
leaves it and runs offline (``HF_HUB_OFFLINE=1``): the same code path, minus the download."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.serve_harness import TINY_MODEL, ServeProc, request

REPO = "spanstream/tiny-gliner"


@pytest.fixture()
def hub_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    repo = cache / ("models--" + REPO.replace("/", "--"))
    commit = "0" * 40
    shutil.copytree(TINY_MODEL, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    env = {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def test_serve_loads_an_hf_model(hub_cache):
    server = ServeProc(env=hub_cache)
    server.model = f"hf://{REPO}"
    server.start()
    try:
        status, _, body = request(server.url + "/v1/models")
        assert status == 200 and json.loads(body)["models"][0]["name"] == REPO
        status, _, body = request(server.url + "/v1/extract", {"text": "Ada Lovelace lived in London.",
                                                                "labels": ["person"]})
        assert status == 200
    finally:
        assert server.stop() == 0


def test_the_worker_runtime_loads_an_hf_model_for_its_pipelines(hub_cache):
    """What ``spanstream worker`` builds before it touches Kafka."""
    from stream.config import PipelineConfig, load_settings
    from stream.runtime import build_runtime

    settings = load_settings(model_path=f"hf://{REPO}", http_enabled=False)
    cfg = PipelineConfig(name="p", input_topics=["in"], output_topic="out", dead_letter_topic="dlq",
                         labels=["person"])
    runtime = build_runtime(settings, [cfg, cfg.model_copy(update={"name": "q", "model": f"hf://{REPO}"})])
    assert {q.engine.info.name for q in runtime.queues} == {REPO}
