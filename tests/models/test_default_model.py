"""The embedded default model: found with no configuration, and finds sensible entities."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from devtools.localkafka import free_port
from stream.engine import Extractor, default_model_path

NEWS = [
    ("Angela Merkel met Emmanuel Macron in Paris on Tuesday.",
     {("Angela Merkel", "person"), ("Emmanuel Macron", "person"), ("Paris", "location")}),
    ("Microsoft bought a startup in Seattle for two billion dollars.",
     {("Microsoft", "organization"), ("Seattle", "location")}),
    ("Serena Williams won Wimbledon in 2002.", {("Serena Williams", "person"), ("2002", "date")}),
    ("The United Nations held a summit in Geneva last March.",
     {("United Nations", "organization"), ("Geneva", "location")}),
]
LABELS = ["person", "organization", "location", "date"]


@pytest.fixture(scope="module")
def default_extractor() -> Extractor:
    return Extractor.load()


def test_default_model_is_the_embedded_gliner2_folder(default_extractor):
    info = default_extractor.info
    assert info.path == str(default_model_path()) and info.family == "gliner2" and info.variant == "fp32"
    card = (default_model_path() / "README.md").read_text()
    assert "Data sources and licences" in card and "make model-gliner2" in card
    assert all(p.stat().st_size < 50 * 2**20 for p in default_model_path().iterdir())  # each committed file


def test_default_model_answers_every_gliner2_task():
    """One schema: entities, a classification, a structure and relations, from the embedded model."""
    from stream.engine import load_engine

    engine = load_engine()
    schema = {"entities": ["person", "organization", "location"],
              "classifications": [{"task": "topic", "labels": ["politics", "sports", "business"]}],
              "structures": {"meeting": {"fields": ["who::list", "where::str"]}},
              "relations": ["met with"]}
    (result,) = engine.extract([NEWS[0][0]], schema, threshold=0.4)
    print(f"DEFAULT MODEL schema result: {result}")
    assert "Angela Merkel" in result["entities"]["person"] and result["topic"] in ("politics", "sports", "business")
    assert set(result) == {"entities", "topic", "meeting", "relation_extraction"}


def test_default_model_finds_entities_in_news(default_extractor):
    results = default_extractor.extract([t for t, _ in NEWS], LABELS, threshold=0.4)
    expected = set().union(*(exp for _, exp in NEWS))
    found = {(e.text, e.label) for row in results for e in row}
    recall = len(expected & found) / len(expected)
    wrong_label = {(t, lab) for t, lab in found if any(t == et and lab != el for et, el in expected)}
    print(f"DEFAULT MODEL: recall {recall:.2f} on {len(expected)} news entities; found {sorted(found)}")
    assert recall >= 0.7, found
    assert len(wrong_label) <= 1, wrong_label


def test_extract_cli_uses_the_default_model():
    proc = subprocess.run([sys.executable, "-m", "stream", "extract", "--labels", "person,location"],
                          input=json.dumps({"text": NEWS[0][0]}).encode(), capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    ents = {(e["text"], e["label"]) for e in json.loads(proc.stdout)["entities"]}
    assert ("Angela Merkel", "person") in ents


@pytest.mark.kafka
def test_make_run_demo_shows_entities_flowing(kafka_bootstrap):
    proc = subprocess.run([sys.executable, "-m", "devtools", "demo", "--bootstrap", kafka_bootstrap,
                           "--http-port", str(free_port())], capture_output=True, timeout=300)
    out = proc.stdout.decode()
    assert proc.returncode == 0, out[-3000:] + proc.stderr.decode()[-3000:]
    # the entity pipeline's 10 events and, the default being a GLiNER2 model, the schema pipeline's 10
    assert out.count("→") == 20 and "(person" in out and "spanstream-demo-extractions" in out


@pytest.mark.kafka
def test_make_run_sink_demo_ends_with_its_entities_queried_back_from_postgres(kafka_bootstrap):
    port = free_port()
    proc = subprocess.run([sys.executable, "-m", "devtools", "demo", "--sink", "--bootstrap", kafka_bootstrap,
                           "--http-port", str(port)], capture_output=True, timeout=300)
    out = proc.stdout.decode()
    assert proc.returncode == 0, out[-3000:] + proc.stderr.decode()[-3000:]
    assert "PostgreSQL: 10 of this run's 10 entity events stored" in out
    people = out.split("people mentioned:")[1]
    assert "Angela Merkel" in people and "Serena Williams" in people, people
    assert "PostgreSQL removed" in out
