"""`spanstream extract --schema` on a GLiNER2 model, exactly as the outside check runs it: each
output line's ``result`` is gliner2's ``batch_extract([text], schema, threshold=T,
include_confidence=True, include_spans=True)[0]`` (golden outputs of gliner2 2.1.x), and the
command never imports torch, gliner or gliner2."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

from tests.engine.test_gliner2_parity import as_spanstream, compare
from tests.fixtures.gliner2_cases import SCHEMAS

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MODEL = FIXTURES / "tiny-gliner2" / "bert" / "spanstream"
NO_TORCH = ("import sys, runpy; sys.argv = ['spanstream'] + sys.argv[1:]\n"
            "try:\n    runpy.run_module('stream', run_name='__main__')\n"
            "except SystemExit as e:\n    code = e.code\n"
            "bad = [m for m in ('torch', 'gliner', 'gliner2') if m in sys.modules]\n"
            "assert not bad, f'imported {bad}'\nsys.exit(code)\n")


def _run(stdin: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", NO_TORCH, "extract", *args], input=stdin.encode(),
                          capture_output=True, timeout=300)


def test_schema_file_results_are_gliner2_batch_extract(tmp_path):
    with gzip.open(FIXTURES / "golden-gliner2-bert.json.gz", "rt", encoding="utf-8") as fh:
        golden = json.load(fh)
    case = golden["cases"]["all"]
    _, schema_name, threshold, conf, spans, policy = case["case"]
    assert (conf, spans, policy) == (True, True, None)
    picked = [i for i, t in enumerate(golden["texts"]) if t.endswith((".", "!", "?"))][:60]
    schema_file = tmp_path / "schema.json"
    schema_file.write_text(json.dumps(SCHEMAS[schema_name]))
    lines = "".join(json.dumps({"id": f"t{i}", "text": golden["texts"][i]}) + "\n" for i in picked)
    proc = _run(lines, "--model", str(MODEL), "--schema", str(schema_file), "--threshold", str(threshold))
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    out = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [o["id"] for o in out] == [f"t{i}" for i in picked]
    for i, o in zip(picked, out):
        ref = as_spanstream(case["expected"][i], SCHEMAS[schema_name], long=False, plain=False)
        assert compare(o["result"], ref, deltas=[]) is None, (golden["texts"][i], o["result"], ref)


def test_line_schema_overrides_and_bad_lines_are_error_records(tmp_path):
    schema_file = tmp_path / "schema.json"
    schema_file.write_text(json.dumps({"entities": ["person"]}))
    lines = [json.dumps({"id": "a", "text": "Ann works for Acme."}),
             json.dumps({"id": "b", "text": "Ann works for Acme.", "schema": {"relations": ["works_for"]}}),
             "not json",
             json.dumps({"text": "x", "schema": {"entities": []}}),
             json.dumps({"text": "x", "labels": ["person"]}),
             json.dumps({"text": "Bob."})]
    proc = _run("\n".join(lines) + "\n", "--model", str(MODEL), "--schema", str(schema_file))
    assert proc.returncode == 1
    out = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [o.get("id", o.get("line")) for o in out] == ["a", "b", 3, 4, 5, 6]
    assert set(out[0]["result"]) == {"entities"} and set(out[1]["result"]) == {"relation_extraction"}
    assert "invalid JSON" in out[2]["error"]
    assert out[3]["reason"] == "invalid_schema" and "schema.entities" in out[3]["error"]
    assert "unknown key" in out[4]["error"]


def test_no_schema_anywhere_is_an_error_line():
    proc = _run(json.dumps({"text": "Ann."}) + "\n", "--model", str(MODEL))
    assert proc.returncode == 1
    assert "no schema" in json.loads(proc.stdout)["error"]


def test_schema_on_a_span_model_and_bad_schema_file_exit_2(tmp_path):
    schema_file = tmp_path / "schema.json"
    schema_file.write_text(json.dumps({"entities": ["person"]}))
    proc = _run("", "--model", str(FIXTURES / "tiny-gliner"), "--schema", str(schema_file))
    assert proc.returncode == 2 and b"GLiNER2 model folder" in proc.stderr
    schema_file.write_text(json.dumps({"entities": {"a": {"threshold": 7}}}))
    proc = _run("", "--model", str(MODEL), "--schema", str(schema_file))
    assert proc.returncode == 2 and b"schema.entities.a.threshold" in proc.stderr


def test_export_gliner2_refuses_a_folder_without_config(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "stream", "export-gliner2", str(tmp_path), str(tmp_path / "out")],
                          capture_output=True, timeout=300)
    assert proc.returncode == 2
    assert b"config.json" in proc.stderr or b"export" in proc.stderr


def test_labels_on_a_gliner2_model_give_entities():
    """A labels request works on a GLiNER2 model (as {"entities": labels}); `extract --labels`
    with a GLiNER2 folder used to answer every line "no schema"."""
    from stream.engine.gliner2.engine import Gliner2Engine

    text = "Sarah Chen, CEO of Nimbus Labs, announced the Orion chip at CES in Las Vegas."
    proc = _run(json.dumps({"text": text}) + "\n", "--model", str(MODEL), "--labels", "person,organization",
                "--threshold", "0.4")
    assert proc.returncode == 0, proc.stderr.decode()
    got = {(e["text"], e["label"]) for e in json.loads(proc.stdout)["entities"]}
    want = Gliner2Engine(MODEL, threads=1).extract([text], {"entities": ["person", "organization"]}, threshold=0.4)[0]
    assert got == {(t, label) for label, texts in want["entities"].items() for t in texts} and got
