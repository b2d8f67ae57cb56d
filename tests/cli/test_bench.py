"""`spanstream bench`: the capacity arithmetic, and the command measuring real (tiny) models."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from stream.serving.capacity import percentile, plan

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SPAN_MODEL = FIXTURES / "tiny-gliner"
GLINER2_MODEL = FIXTURES / "tiny-gliner2" / "bert" / "spanstream"


def test_plan_rounds_replicas_up_from_the_planned_replica_rate():
    p = plan(5000, 90, 2)  # each replica planned at 90 × 0.87 × 0.8 = 62.64 events/s
    assert (p.replicas, p.cpu_per_replica, p.partitions) == (80, 2, 80)
    assert p.replica_per_s == pytest.approx(62.64)
    assert plan(50, 90, 2).replicas == 1
    assert plan(100, 100, 1, worker_efficiency=1, utilisation=1).replicas == 1
    assert plan(101, 100, 1, worker_efficiency=1, utilisation=1).replicas == 2


@pytest.mark.parametrize("kwargs", [dict(target_per_s=0, measured_per_s=1), dict(target_per_s=1, measured_per_s=0),
                                    dict(target_per_s=1, measured_per_s=1, utilisation=1.5)])
def test_plan_refuses_what_cannot_be_planned(kwargs):
    with pytest.raises(ValueError):
        plan(cpu_per_replica=1, **kwargs)


def test_percentile_is_the_nearest_rank():
    values = [float(v) for v in range(100, 0, -1)]
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (50, 99, 100)
    assert percentile([7.0], 99) == 7


def _bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stream", "bench", "--seconds", "1", "--latency-seconds", "1", "--latency-texts", "0",
                           "--threads", "1", *args], capture_output=True, timeout=300)


def test_bench_measures_labels_and_schema_lines_and_plans_from_what_it_measured(tmp_path):
    texts = tmp_path / "texts.jsonl"
    texts.write_text(json.dumps({"text": "Ada Lovelace worked in London.", "labels": ["person", "city"]}) + "\n"
                     + json.dumps({"text": "Alan Turing was born in 1912.",
                                   "schema": {"entities": ["person", "date"], "classifications": [
                                       {"task": "topic", "labels": ["science", "sport"]}]}}) + "\n")
    proc = _bench("--model", str(GLINER2_MODEL), "--texts", str(texts), "--target-rate", "1000", "--json")
    assert proc.returncode == 0, proc.stderr.decode()
    r = json.loads(proc.stdout)
    assert r["family"] == "gliner2" and r["threads"] == 1 and r["texts"] == 2
    assert r["measured_texts"] > 0 and r["texts_per_s"] > 0
    assert [x["offered_per_s"] for x in r["latency"]] == pytest.approx([f * r["texts_per_s"] for f in (0.5, 0.8)],
                                                                       abs=0.02)  # both rounded to 0.01
    assert all(x["texts"] > 0 and x["p50_ms"] <= x["p95_ms"] <= x["p99_ms"] for x in r["latency"])
    planned = r["texts_per_s"] * 0.87 * 0.8
    assert r["plan"]["replicas"] in {math.ceil(1000 / planned), math.ceil(1000 / planned) + 1}  # rounding of texts_per_s
    assert r["plan"]["partitions"] == r["plan"]["replicas"] and r["plan"]["cpu_per_replica"] == 1


def test_bench_prints_a_table_on_the_built_in_paragraphs():
    proc = _bench("--model", str(SPAN_MODEL), "--sample", "paragraph", "--loads", "0.5")
    assert proc.returncode == 0, proc.stderr.decode()
    out = proc.stdout.decode()
    assert "36 texts of" in out and "texts/s" in out and out.count("latency at") == 1
    assert "replicas" not in out  # no target rate, no plan


def test_bench_refuses_a_schema_for_a_span_model_and_names_a_bad_line(tmp_path):
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"entities": ["person"]}))
    proc = _bench("--model", str(SPAN_MODEL), "--schema", str(schema))
    assert proc.returncode == 2 and b"a schema needs a GLiNER2 model" in proc.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"txt": "no text"}\n')
    proc = _bench("--model", str(SPAN_MODEL), "--texts", str(bad))
    assert proc.returncode == 2 and f"{bad}:2: each line needs a string 'text'".encode() in proc.stderr


def test_a_latency_window_lasts_until_enough_texts_have_arrived():
    import asyncio

    from stream.serving.capacity import measure_latency

    class Instant:
        async def submit(self, texts, labels, params):
            return [None] * len(texts)

    # 0.2 s at 50/s offers ~10 texts; the window must stretch until 40 have arrived
    short = asyncio.run(measure_latency(Instant(), ["t"], [()], [None], rate=50, seconds=0.2, min_texts=40))
    assert short.texts == 40
    long = asyncio.run(measure_latency(Instant(), ["t"], [()], [None], rate=50, seconds=1.0, min_texts=5))
    assert long.texts > 30  # the seconds bound the window when they give more
