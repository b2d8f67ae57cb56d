"""GLiNER2.5 (boundary architecture) parity: spanstream's torch-free engine against gliner2 2.1.x
``BoundaryExtractor.batch_extract`` on the tiny boundary checkpoint (shared candidate pool, one
boundary attention block, abstention head; ``tests/fixtures/build_tiny_boundary.py``, exported
by ``spanstream export-gliner2``), on every case of ``tests/fixtures/gliner2_cases.py`` whose
schema boundary checkpoints serve so far (entities, relations, classifications) over 314 texts.

The same deliberate difference as on span checkpoints, and the same one function applies it: a
candidate reaching into the period gliner2 appends to a text without final punctuation is dropped
(before overlap resolution); ``raw`` in the golden file keeps what gliner2 returns there.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from stream.engine.gliner2.engine import Gliner2Engine
from stream.errors import InvalidInput, ModelLoadError
from tests.engine.test_gliner2_parity import (
    THRESHOLD_TIES,
    _check,
    _spans,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MODEL = FIXTURES / "tiny-boundary" / "bert" / "spanstream"


@pytest.fixture(scope="module")
def golden():
    with gzip.open(FIXTURES / "golden-boundary.json.gz", "rt", encoding="utf-8") as fh:
        return json.load(fh)


@pytest.fixture(scope="module")
def engine():
    return Gliner2Engine(MODEL, threads=2)


def test_boundary_results_match_gliner2_batch_extract(engine, golden):
    texts = golden["texts"]
    assert len(texts) >= 300 and len(golden["cases"]) >= 21
    THRESHOLD_TIES.clear()
    compared, silent, deltas, failures = _check(engine, golden, "cases", texts, long=False)
    print(f"\n[boundary] {compared} results identical to gliner2 {golden['gliner2_version']} "
          f"({len(texts)} texts x {len(golden['cases'])} cases), max score delta {max(deltas):.2e} "
          f"({len(THRESHOLD_TIES)} with an item at the threshold within 1e-4, kept by one side only); "
          f"{silent} results on texts with a silent word checked for offsets only")
    assert not failures, f"{len(failures)} differ; first: " + "\n".join(failures[:5])
    entities = sum(1 for e in golden["cases"]["ents"]["expected"] if any(e["entities"].values()))
    assert entities > 250  # the fixture's scores are decisive: most texts have entities to compare


def test_named_differences_are_only_the_appended_period(golden):
    named = 0
    for name, entry in golden["cases"].items():
        for i, raw in entry["raw"].items():
            text = golden["texts"][int(i)]
            named += 1
            assert not text.endswith((".", "!", "?")), (name, text)
            if entry["case"][4]:
                assert any(s["end"] > len(text) for s in _spans(raw)), (name, text)
    assert named > 0
    print(f"\n[boundary] {named} results differ from raw gliner2 only by spans on its appended period")


def test_schemas_boundary_checkpoints_do_not_serve_yet_are_refused_naming_the_key(engine):
    for schema, key in (({"structures": {"p": {"fields": [{"name": "n", "dtype": "str"}]}}}, "schema.structures"),
                        ({"entities": ["person"], "entity_attributes": {"s": {"labels": ["a", "b"]}}},
                         "schema.entity_attributes")):
        with pytest.raises(InvalidInput) as err:
            engine.check_schema(schema)
        assert err.value.reason == "unsupported_schema" and key in err.value.message


def test_settings_the_engine_does_not_compute_are_refused_at_load(tmp_path):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(MODEL, folder)
    config = json.loads((folder / "gliner2_config.json").read_text())
    config["boundary_head"]["candidate_pool"] = "per_query"
    (folder / "gliner2_config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=r"boundary_head\.candidate_pool = 'per_query' is not supported"):
        Gliner2Engine(folder)


def test_the_count_guided_threshold_matches_gliner2(golden, tmp_path):
    """``adaptive_threshold``: each type also keeps its top round(exp(count log-rate)) candidates
    (the tiny checkpoint has it off; the golden turned it on in gliner2's settings, this test in
    the exported config)."""
    import shutil

    folder = tmp_path / "adaptive"
    shutil.copytree(MODEL, folder)
    config = json.loads((folder / "gliner2_config.json").read_text())
    config["boundary_head"]["adaptive_threshold"] = True
    (folder / "gliner2_config.json").write_text(json.dumps(config))
    adaptive = Gliner2Engine(folder, threads=2)
    entry = golden["adaptive"]
    texts = golden["texts"]
    compared, _, _, failures = _check(adaptive, {"cases": {"adaptive": entry}}, "cases", texts, long=False)
    assert compared > 280 and not failures, failures[:3]
    _, schema_name, threshold, *_ = entry["case"]
    plain = Gliner2Engine(MODEL, threads=2).extract(texts, {"entities": ["person", "organization", "location"]},
                                                    threshold=threshold)
    ours = adaptive.extract(texts, {"entities": ["person", "organization", "location"]}, threshold=threshold)
    count = lambda results: sum(len(v) for r in results for v in r["entities"].values())  # noqa: E731
    assert count(ours) > count(plain)  # the count head added candidates below the threshold


def test_long_texts_match_gliner2_batch_extract_long(golden):
    """Texts past the encoder's window: spanstream's windows, merged as for span checkpoints,
    against the boundary model's ``batch_extract_long`` (same chunk size and overlap)."""
    from tests.fixtures.gliner2_cases import LONG_CHUNK_OVERLAP, LONG_CHUNK_SIZE

    engine = Gliner2Engine(MODEL, threads=2, chunk_size=LONG_CHUNK_SIZE, chunk_overlap=LONG_CHUNK_OVERLAP)
    texts = golden["long_texts"]
    windows = {i: len(p.rows) for i, p in enumerate(engine.prepare(texts, [{"entities": ["person"]}] * len(texts)))
               if len(p.rows) > 1}
    assert len(windows) >= 6
    compared, _, deltas, failures = _check(engine, golden, "long_cases", texts, long=True, only=set(windows))
    print(f"\n[boundary] {compared} long-text results identical to gliner2 batch_extract_long "
          f"({len(windows)} texts, {min(windows.values())}–{max(windows.values())} windows), "
          f"max score delta {max(deltas):.2e}")
    assert compared >= 5 * len(windows) and not failures, f"{len(failures)} differ; first: " + "\n".join(failures[:3])
