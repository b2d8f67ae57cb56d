"""`spanstream extract` end to end, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

MODEL = Path(__file__).resolve().parents[1] / "fixtures" / "tiny-gliner"


def _run(stdin: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stream", "extract", "--model", str(MODEL), *args],
                          input=stdin.encode(), capture_output=True, timeout=120)


def test_extract_jsonl_with_errors_in_order():
    lines = [json.dumps({"id": "a", "text": "Angela Merkel visited Paris."}), "not json", json.dumps({"text": 5}),
             json.dumps({"text": "Apple in Texas", "labels": ["company"]}), json.dumps({"text": "x", "labels": []})]
    proc = _run("\n".join(lines) + "\n", "--labels", "person,location", "--threshold", "0.5")
    assert proc.returncode == 1
    out = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [o.get("id", o.get("line")) for o in out] == ["a", 2, 3, 4, 5]
    assert "invalid JSON" in out[1]["error"] and out[2]["error"].startswith("text:")
    assert out[4]["error"].startswith("labels:")
    text = "Angela Merkel visited Paris."
    assert out[0]["entities"] and all(text[e["start"]:e["end"]] == e["text"] for e in out[0]["entities"])
    assert {e["label"] for e in out[3]["entities"]} <= {"company"}


def test_extract_all_good_exits_zero_and_int8():
    proc = _run(json.dumps({"text": "Berlin"}) + "\n", "--labels", "city", "--variant", "int8")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["id"] == 1


def test_missing_model_is_a_clear_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "stream", "extract", "--model", str(tmp_path / "none"),
                           "--labels", "x"], input=b"", capture_output=True, timeout=60)
    assert proc.returncode == 2 and b"does not exist" in proc.stderr


def test_a_line_whose_labels_cannot_fit_fails_alone():
    long_labels = [" ".join(f"word{i}x{j}" for j in range(10)) for i in range(50)]
    lines = [json.dumps({"id": "a", "text": "Angela Merkel visited Paris."}),
             json.dumps({"id": "b", "text": "Berlin", "labels": long_labels}),
             json.dumps({"id": "c", "text": "Apple in Texas"})]
    proc = _run("\n".join(lines) + "\n", "--labels", "person,location", "--threshold", "0.3")
    assert proc.returncode == 1, proc.stderr
    out = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [o.get("id", o.get("line")) for o in out] == ["a", 2, "c"]
    assert out[1]["reason"] == "labels_too_long"
    assert out[0]["entities"] and "entities" in out[2]
