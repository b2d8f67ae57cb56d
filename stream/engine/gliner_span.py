"""GLiNER uni-encoder span models (markerV0): split → encode → window → batch → ONNX → decode.

Stages are pure functions in their own modules; this one composes them and owns the session.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from stream.engine.decode import candidate_spans, greedy_search
from stream.engine.fastgraph import GraphPatternError, fast_graph_path
from stream.engine.folder import ModelFolder
from stream.engine.params import DecodeParams
from stream.engine.prompt import EncodedWords, PromptEncoder, Row
from stream.engine.session import OnnxSession
from stream.engine.splitter import split_words
from stream.engine.tensors import INPUT_NAMES, OUTPUT_NAMES, build_feed
from stream.engine.types import Entity, Extraction, Words, WordSpan
from stream.engine.windows import merge_window_spans, plan_windows

log = logging.getLogger(__name__)


class _Job(NamedTuple):
    """One model row and where its results go."""

    text_index: int
    word_offset: int
    labels: tuple[str, ...]
    row: Row


class _Plan(NamedTuple):
    """Every text split into words, and the model rows (windows) they become."""

    splits: list[Words]
    live: list[int]
    "indices of texts with at least one word (the others get no row)"
    jobs: list[_Job]
    windowed: set[int]
    "indices of texts cut into more than one window"


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


class GlinerSpanEngine:
    """Thread-safe: no mutable state besides the (locked) prompt cache and the ORT session."""

    family = "gliner-span"

    def __init__(self, folder: ModelFolder, threads: int | None = None, graph: str = "fast"):
        cfg = folder.config
        self.max_width = cfg.max_width
        self.max_len = cfg.max_len
        self.encoder = PromptEncoder(folder.tokenizer_file, folder.tokenizer_config, cfg.ent_token, cfg.sep_token)
        onnx_file = folder.onnx_file
        if graph == "fast":
            try:
                onnx_file = fast_graph_path(folder.onnx_file, cfg.max_width)
            except (GraphPatternError, ImportError) as exc:
                log.warning("%s: fast span head not available (%s); using the exported graph", folder.onnx_file, exc)
                graph = "exported"
        elif graph != "exported":
            raise ValueError(f"graph must be 'fast' or 'exported', not {graph!r}")
        self.session = OnnxSession(onnx_file, INPUT_NAMES, OUTPUT_NAMES, threads)
        self.info = ModelInfo(folder.name, self.family, folder.variant, cfg.max_width, cfg.max_len,
                              str(folder.root), graph)

    def _plan(self, texts: list[str], labels: list[tuple[str, ...]]) -> _Plan:
        """Split, encode and window every text."""
        splits = [split_words(t) for t in texts]
        live = [i for i, s in enumerate(splits) if s.words]
        encoded: dict[int, EncodedWords] = dict(zip(live, self.encoder.encode_words([splits[i].words for i in live])))
        jobs: list[_Job] = []
        windowed: set[int] = set()
        for i in live:
            budget = self.encoder.content_budget - self.encoder.prompt(labels[i]).ids.size
            windows = plan_windows(encoded[i].word_token_counts, self.max_len, max(budget, 1),
                                   overlap=min(2 * self.max_width, self.max_len // 2))
            if len(windows) > 1:
                windowed.add(i)
            for start, end in windows:
                jobs.append(_Job(i, start, labels[i], self.encoder.build_row(labels[i], encoded[i], start, end)))
        return _Plan(splits, live, jobs, windowed)

    def _batches(self, jobs: list[_Job], batch_size: int, sort_by_length: bool):
        """(jobs, ONNX feed) per batch; sorted by length so each batch pads little."""
        if sort_by_length:
            jobs = sorted(jobs, key=lambda j: j.row.ids.size)
        for b in range(0, len(jobs), batch_size):
            chunk = jobs[b:b + batch_size]
            yield chunk, build_feed([j.row for j in chunk], self.max_width, self.encoder.pad_id)

    def feeds(self, texts: list[str], labels: list[tuple[str, ...]], batch_size: int = 16,
              sort_by_length: bool = True) -> list[dict[str, np.ndarray]]:
        """The ONNX feeds ``extract`` would run, without running them (calibration, profiling)."""
        return [feed for _, feed in self._batches(self._plan(texts, labels).jobs, batch_size, sort_by_length)]

    def extract(self, texts: list[str], labels: list[tuple[str, ...]], params: list[DecodeParams],
                batch_size: int = 16, sort_by_length: bool = True) -> list[Extraction]:
        """``sort_by_length`` groups rows of similar length to minimise padding; turn it off to
        reproduce another runtime's batches exactly (int8 activation scales are per batch)."""
        splits, live, jobs, windowed = self._plan(texts, labels)
        spans: dict[int, list[WordSpan]] = {i: [] for i in live}
        # Results are keyed by text, so batch order is free.
        for chunk, feed in self._batches(jobs, batch_size, sort_by_length):
            logits = self.session.run(feed)[0]
            for job, row_logits in zip(chunk, logits):
                p = params[job.text_index]
                thresholds = np.asarray([p.threshold_for(lab) for lab in job.labels], dtype=np.float32)
                found = candidate_spans(row_logits[:, :, :len(job.labels)], job.row.num_words, thresholds)
                # Decode each window as gliner decodes a text; windows are then merged below.
                found = greedy_search(found, p.flat_ner, p.multi_label)
                spans[job.text_index].extend(
                    WordSpan(s.start + job.word_offset, s.end + job.word_offset, s.label_index, s.score) for s in found)
        results = []
        for i, text in enumerate(texts):
            if i not in spans:
                results.append(Extraction([], False))
                continue
            found = spans[i]
            if i in windowed:
                p = params[i]
                found = greedy_search(merge_window_spans(found), p.flat_ner, p.multi_label)
            results.append(Extraction(_to_entities(text, splits[i], found, labels[i]), i in windowed))
        return results


def _to_entities(text: str, words: Words, spans: list[WordSpan], labels: tuple[str, ...]) -> list[Entity]:
    out = []
    for s in spans:
        start, end = words.starts[s.start], words.ends[s.end]
        out.append(Entity(text[start:end], labels[s.label_index], start, end, s.score))
    return out
