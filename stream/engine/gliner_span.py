"""GLiNER uni-encoder span models (markerV0): split → encode → window → batch → ONNX → decode.

Stages are pure functions in their own modules; this one composes them and owns the session.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from stream.engine.decode import candidates, greedy_search
from stream.engine.fastgraph import GraphPatternError, fast_graph_path
from stream.engine.folder import ModelFolder
from stream.engine.params import DecodeParams
from stream.engine.prompt import EncodedWords, PromptEncoder, Row, drop_silent_words
from stream.engine.quantize import exact_int8_path, int8_agreement, int8_graph_path
from stream.engine.session import OnnxSession
from stream.engine.splitter import split_words
from stream.engine.tensors import INPUT_NAMES, OUTPUT_NAMES, build_feed
from stream.engine.types import Entity, Extraction, Prepared, Words, WordSpan
from stream.engine.windows import merge_window_candidates, plan_windows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    name: str
    family: str
    variant: str
    max_width: int
    max_len: int
    path: str
    graph: str = "exported"
    "'fast' (rewritten span head) or 'exported' (the graph as shipped)"
    max_types: int = 25
    "Labels per request the model was trained with; more are allowed (and counted)."
    max_tokens: int = 512
    "Tokens per model row (prompt, text and special tokens)."
    int8_agreement: float | None = None
    "int8 only: entity F1 against the fp32 reference on the probe set, measured at load."


class GlinerSpanEngine:
    """Thread-safe: no mutable state besides the (locked) prompt cache and the ORT session.

    ``prepare`` → (rows batched by ``engine.batching``) → ``run`` → ``decode``; the rows of
    many texts may share a batch, in any order.
    """

    family = "gliner-span"

    def __init__(self, folder: ModelFolder, threads: int | None = None, graph: str = "fast",
                 cache_dir: str | Path | None = None):
        cfg = folder.config
        self.max_width = cfg.max_width
        self.max_len = cfg.max_len
        self.encoder = PromptEncoder(folder.tokenizer_file, folder.tokenizer_config, cfg.ent_token, cfg.sep_token,
                                     cfg.max_positions)
        onnx_file = folder.onnx_file
        if folder.derive_int8:
            onnx_file = int8_graph_path(onnx_file, cache_dir)
        if graph == "fast":
            try:
                onnx_file = fast_graph_path(onnx_file, cfg.max_width, cache_dir, int8=folder.variant == "int8")
            except (GraphPatternError, ImportError) as exc:
                log.warning("%s: fast span head not available (%s); using the exported graph", folder.onnx_file, exc)
                graph = "exported"
        elif graph != "exported":
            raise ValueError(f"graph must be 'fast' or 'exported', not {graph!r}")
        if graph == "exported" and folder.variant == "int8":
            onnx_file = exact_int8_path(onnx_file, cache_dir)  # no saturating u8 x s8 kernel (engine.quantize)
        self.session = OnnxSession(onnx_file, INPUT_NAMES, OUTPUT_NAMES, threads)
        self.info = ModelInfo(folder.name, self.family, folder.variant, cfg.max_width, cfg.max_len,
                              str(folder.root), graph, cfg.max_types, self.encoder.max_tokens)
        if folder.variant == "int8":
            self.info = replace(self.info, int8_agreement=self._int8_gate(folder, cache_dir))

    def _int8_gate(self, folder: ModelFolder, cache_dir) -> float | None:
        """Agreement of this int8 graph with fp32 (the folder's fp32 graph, else its int8 weights
        in float arithmetic), measured once per graph and cached."""
        try:
            f1 = int8_agreement(self, folder.onnx_file, folder.fp32_file, cache_dir)
        except Exception as exc:  # a measurement, never a reason not to serve
            log.warning("%s: could not measure int8 agreement with fp32: %r", folder.root, exc)
            return None
        log.info("%s int8: entity F1 %.4f against fp32 on the probe set", folder.name, f1)
        return round(f1, 4)

    def check_labels(self, labels: tuple[str, ...]) -> None:
        """Raise ``InvalidInput`` (``invalid_label``, ``labels_too_long``) for a label set this
        model cannot take; call it before queueing work."""
        self.encoder.check_labels(labels)

    def prepare(self, texts: list[str], labels: list[tuple[str, ...]]) -> list[Prepared]:
        """Split, tokenize and window every text (pure CPU work, no model call); raises
        ``InvalidInput`` if a label set does not fit (see ``check_labels``)."""
        for label_set in set(labels):
            self.encoder.check_labels(label_set)
        splits = [split_words(t) for t in texts]
        live = [i for i, s in enumerate(splits) if s.words]
        encoded: dict[int, EncodedWords] = {}
        for i, enc in zip(live, self.encoder.encode_words([splits[i].words for i in live])):
            splits[i], enc = drop_silent_words(splits[i], enc)
            if enc.ids.size:
                encoded[i] = enc
        out = []
        for i, (text, words) in enumerate(zip(texts, splits)):
            rows: list[Row] = []
            offsets: list[int] = []
            if i in encoded:
                budget = self.encoder.content_budget - self.encoder.prompt(labels[i]).ids.size
                for start, end in plan_windows(encoded[i].word_token_counts, self.max_len, max(budget, 1),
                                               overlap=min(2 * self.max_width, self.max_len // 2)):
                    rows.append(self.encoder.build_row(labels[i], encoded[i], start, end))
                    offsets.append(start)
            out.append(Prepared(text, labels[i], words, tuple(rows), tuple(offsets),
                                tuple(r.ids.size for r in rows)))
        return out

    def feed(self, rows: list[Row]) -> dict[str, np.ndarray]:
        """The ONNX feed for one batch of rows (padded to the longest)."""
        return build_feed(rows, self.max_width, self.encoder.pad_id)

    def run(self, rows: list[Row]) -> list[np.ndarray]:
        """One ONNX call; the logits of each row, float32 [W, K, C]. Each is a copy, not a view of
        the batch array: a long text's windows wait across batches, and a view would keep its whole
        batch alive until the last window is done."""
        logits = self.session.run(self.feed(rows))[0]
        return [row_logits.copy() for row_logits in logits]

    def decode(self, prepared: Prepared, logits: list[np.ndarray], params: DecodeParams) -> Extraction:
        """Row logits (one per window, in row order) → the text's entities."""
        labels = prepared.labels
        thresholds = np.asarray([params.threshold_for(lab) for lab in labels], dtype=np.float32)
        found_per_window = [candidates(row_logits[:, :, :len(labels)], row.num_words, thresholds).shifted(offset)
                            for row, offset, row_logits in zip(prepared.rows, prepared.offsets, logits)]
        if prepared.windowed:
            bounds = [(offset, offset + row.num_words) for row, offset in zip(prepared.rows, prepared.offsets)]
            merged = merge_window_candidates(found_per_window, bounds)
        else:
            merged = found_per_window[0].spans() if found_per_window else []
        found = greedy_search(merged, params.flat_ner, params.multi_label)
        return Extraction(_to_entities(prepared.text, prepared.words, found, labels), prepared.windowed)


def _to_entities(text: str, words: Words, spans: list[WordSpan], labels: tuple[str, ...]) -> list[Entity]:
    out = []
    for s in spans:
        start, end = words.starts[s.start], words.ends[s.end]
        out.append(Entity(text[start:end], labels[s.label_index], start, end, s.score))
    return out
