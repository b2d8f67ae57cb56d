"""Model rows → the six input tensors of a GLiNER span graph (padded to the batch's longest)."""

from __future__ import annotations

import numpy as np

from stream.engine.prompt import Row

INPUT_IDS = "input_ids"
ATTENTION_MASK = "attention_mask"
WORDS_MASK = "words_mask"
TEXT_LENGTHS = "text_lengths"
SPAN_IDX = "span_idx"
SPAN_MASK = "span_mask"
LOGITS = "logits"
INPUT_NAMES = (INPUT_IDS, ATTENTION_MASK, WORDS_MASK, TEXT_LENGTHS, SPAN_IDX, SPAN_MASK)
OUTPUT_NAMES = (LOGITS,)


def build_feed(rows: list[Row], max_width: int, pad_id: int) -> dict[str, np.ndarray]:
    """Shapes: ids/masks [B, T]; text_lengths [B, 1]; span_idx [B, W*K, 2]; span_mask [B, W*K].

    Span enumeration is gliner's ``prepare_span_idx``: (i, i+j) for every word i and width j<K;
    padded word positions get (0, 0) and a false mask, as torch's ``pad_sequence`` gives them.
    """
    batch = len(rows)
    t_max = max(r.ids.size for r in rows)
    w_max = max(r.num_words for r in rows)
    input_ids = np.full((batch, t_max), pad_id, dtype=np.int64)
    attention = np.zeros((batch, t_max), dtype=np.int64)
    words_mask = np.zeros((batch, t_max), dtype=np.int64)
    for b, row in enumerate(rows):
        input_ids[b, :row.ids.size] = row.ids
        attention[b, :row.ids.size] = 1
        words_mask[b, :row.words_mask.size] = row.words_mask
    lengths = np.asarray([[r.num_words] for r in rows], dtype=np.int64)
    starts = np.repeat(np.arange(w_max, dtype=np.int64), max_width)
    ends = starts + np.tile(np.arange(max_width, dtype=np.int64), w_max)
    span_idx = np.broadcast_to(np.stack([starts, ends], axis=-1), (batch, w_max * max_width, 2)).copy()
    in_text = starts[None, :] < lengths  # [B, W*K]
    span_idx[~in_text] = 0
    span_mask = in_text & (ends[None, :] <= lengths - 1)
    return {INPUT_IDS: input_ids, ATTENTION_MASK: attention, WORDS_MASK: words_mask,
            TEXT_LENGTHS: lengths, SPAN_IDX: span_idx, SPAN_MASK: span_mask}
