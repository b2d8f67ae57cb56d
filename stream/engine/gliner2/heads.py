"""GLiNER2's small heads in numpy: count prediction, count-aware field queries, span scoring and
classification. They cost far less than the encoder, and numpy float32 keeps them within 1e-6 of
torch (parity checks 1e-4), with no second onnxruntime session to schedule.

Weights are gliner2's own tensors, saved by ``export-gliner2`` in ``heads.npz`` under their
state-dict names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stream.errors import ModelLoadError

COUNTING_LAYERS = ("count_lstm", "count_lstm_v2")


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0, out=x)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def _softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


class Heads:
    def __init__(self, weights: dict[str, np.ndarray], counting_layer: str, max_width: int):
        if counting_layer not in COUNTING_LAYERS:
            raise ModelLoadError(f"counting_layer {counting_layer!r} is not supported "
                                 f"(supported: {', '.join(COUNTING_LAYERS)})")
        self.w = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}
        # Linear weights transposed once, contiguous: x @ W.T on a transposed view sends numpy's
        # stacked (3-D) matmul down a slow non-BLAS path.
        self.wt = {k.removesuffix(".weight"): np.ascontiguousarray(v.T) for k, v in self.w.items()
                   if (k.endswith(".weight") or "gru.weight_" in k) and v.ndim == 2}
        self.counting_layer = counting_layer
        self.max_width = max_width
        self.max_count = self.w["count_embed.pos_embedding.weight"].shape[0]
        h = self.w["classifier.0.weight"].shape[1]
        first = self.w["span_rep.span_rep_layer.out_project.0.weight"]
        self._first_start = np.ascontiguousarray(first[:, :h].T)
        self._first_end = np.ascontiguousarray(first[:, h:].T)

    @classmethod
    def load(cls, path: Path, counting_layer: str, max_width: int) -> "Heads":
        try:
            with np.load(path) as npz:
                weights = {k: npz[k] for k in npz.files}
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"{path}: cannot read the head weights: {exc}") from exc
        try:
            return cls(weights, counting_layer, max_width)
        except KeyError as exc:
            raise ModelLoadError(f"{path}: missing head weight {exc}") from exc

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        w = self.wt[name]
        y = x.reshape(-1, x.shape[-1]) @ w
        y += self.w[f"{name}.bias"]
        return y.reshape(*x.shape[:-1], w.shape[1])

    def _mlp2(self, x: np.ndarray, name: str, last: int = 2) -> np.ndarray:
        return self._linear(_relu(self._linear(x, f"{name}.0")), f"{name}.{last}")

    # --- counts and queries -------------------------------------------------------------
    def counts(self, prompt_embs: np.ndarray) -> np.ndarray:
        """Predicted instance count per task, from each task's ``[P]`` embedding [T, H]."""
        return self.count_logits(prompt_embs).argmax(-1)

    def count_logits(self, prompt_embs: np.ndarray) -> np.ndarray:
        """The count head's logits over 0..max count per task [T, counts]."""
        return self._mlp2(prompt_embs, "count_pred")

    def count_queries_many(self, fields: list[np.ndarray], ks: list[int]) -> list[np.ndarray]:
        """Count-aware queries [k, M, H] for each task's M field embeddings (gliner2's
        ``count_embed``), for many tasks at once: one GRU over every task's fields for the largest
        k (step t does not depend on how many steps follow), one projector call."""
        ks = [min(k, self.max_count) for k in ks]
        kmax = max(ks)
        h = fields[0].shape[1]
        state = np.concatenate(fields)  # [sum M, H]
        pos = self.w["count_embed.pos_embedding.weight"][:kmax]
        gi = pos @ self.wt["count_embed.gru.weight_ih_l0"] + self.w["count_embed.gru.bias_ih_l0"]  # [kmax, 3H]
        w_hh, b_hh = self.wt["count_embed.gru.weight_hh_l0"], self.w["count_embed.gru.bias_hh_l0"]
        steps = np.empty((kmax, len(state), h), dtype=np.float32)
        for t in range(kmax):
            gh = state @ w_hh + b_hh
            r = _sigmoid(gi[t, :h] + gh[:, :h])
            z = _sigmoid(gi[t, h:2 * h] + gh[:, h:2 * h])
            n = np.tanh(gi[t, 2 * h:] + r * gh[:, 2 * h:])
            state = (1 - z) * n + z * state
            steps[t] = state
        outs, at = [], 0
        for f, k in zip(fields, ks):
            outs.append((steps[:k, at:at + len(f)], f))
            at += len(f)
        if self.counting_layer == "count_lstm":
            x = np.concatenate([np.concatenate([o, np.broadcast_to(f, o.shape)], -1).reshape(-1, 2 * h)
                                for o, f in outs])
            y = self._mlp2(x, "count_embed.projector")
            result, at = [], 0
            for (o, _), k in zip(outs, ks):
                n_rows = o.shape[0] * o.shape[1]
                result.append(y[at:at + n_rows].reshape(o.shape))
                at += n_rows
            return result
        return [self._downscaled_transformer(o + f) for o, f in outs]

    def _downscaled_transformer(self, x: np.ndarray) -> np.ndarray:
        """count_lstm_v2: fields of each instance attend to each other (2 post-norm layers)."""
        p = "count_embed.transformer"
        y = self._linear(x, f"{p}.in_projector")
        layer = 0
        while f"{p}.transformer.layers.{layer}.linear1.weight" in self.w:
            q = f"{p}.transformer.layers.{layer}"
            y = _layer_norm(y + self._self_attention(y, f"{q}.self_attn"), self.w[f"{q}.norm1.weight"],
                            self.w[f"{q}.norm1.bias"])
            ff = self._linear(_relu(self._linear(y, f"{q}.linear1")), f"{q}.linear2")
            y = _layer_norm(y + ff, self.w[f"{q}.norm2.weight"], self.w[f"{q}.norm2.bias"])
            layer += 1
        z = np.concatenate([y, x], -1)
        z = _relu(self._linear(z, f"{p}.out_projector.0"))
        z = _relu(self._linear(z, f"{p}.out_projector.2"))
        return self._linear(z, f"{p}.out_projector.4")

    def _self_attention(self, x: np.ndarray, name: str, heads: int = 4) -> np.ndarray:
        b, s, d = x.shape
        qkv = x @ self.w[f"{name}.in_proj_weight"].T + self.w[f"{name}.in_proj_bias"]  # [k, M, 3d]: small
        q, k, v = (t.reshape(b, s, heads, d // heads).transpose(0, 2, 1, 3) for t in np.split(qkv, 3, -1))
        att = _softmax(q @ k.transpose(0, 1, 3, 2) / np.sqrt(d // heads))
        out = (att @ v).transpose(0, 2, 1, 3).reshape(b, s, d)
        return self._linear(out, f"{name}.out_proj")

    # --- spans and classes --------------------------------------------------------------
    def word_parts(self, words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The per-word halves of the span layer's first Linear, [N, 4H] each: start words
        (bias included) and end words. Words of many texts can go through at once."""
        p = "span_rep.span_rep_layer"
        start = _relu(self._mlp2(words, f"{p}.project_start", 3))
        end = _relu(self._mlp2(words, f"{p}.project_end", 3))
        return start @ self._first_start + self.w[f"{p}.out_project.0.bias"], end @ self._first_end

    def span_logits(self, words: np.ndarray, queries: np.ndarray,
                    parts: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """Logits [Q, L, W] of every span (start l, width w) against every query; -inf where
        the span runs past the last word (gliner2's factorised ``score_queries``): per span only
        ``relu(start_l + end_{l+w}) · (W2ᵀ q) + q · b2`` remains."""
        n = words.shape[0]
        width = self.max_width
        start_hidden, end_hidden = parts if parts is not None else self.word_parts(words)
        hidden = np.zeros((n, width, start_hidden.shape[1]), dtype=np.float32)
        for w in range(min(width, n)):  # span (l, w) ends at word l + w; past the last word it is masked below
            hidden[:n - w, w] = end_hidden[w:]
        hidden += start_hidden[:, None, :]
        _relu(hidden)
        p = "span_rep.span_rep_layer"
        w2, b2 = self.w[f"{p}.out_project.3.weight"], self.w[f"{p}.out_project.3.bias"]
        folded = queries @ w2  # [Q, 4H] (q^T W2: the final layer folded into the queries)
        logits = (hidden.reshape(n * width, -1) @ folded.T + queries @ b2).T.reshape(len(queries), n, width)
        invalid = (np.arange(n)[:, None] + np.arange(width)[None, :]) >= n
        logits[:, invalid] = -np.inf
        return logits

    def class_logits(self, label_embs: np.ndarray) -> np.ndarray:
        return self._mlp2(label_embs, "classifier")[:, 0]
