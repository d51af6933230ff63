"""What erasure is measured by: behaviours, and forward passes with an eraser hooked in.

A ``Behaviour`` runs a forward function (token ids [b, t] → logits [b, t, V]) over its own
inputs and returns, per *unit* (a held-out sentence: the bootstrap's resampling unit),
numerators and denominators of its measures:

* ``"agreement"``: (correct minimal pairs, pairs) — or None where no pair could be built;
* ``"loss"``: (summed next-token loss in nats, predicted tokens).

``LMBehaviour`` is the language-model behaviour on held-out sentences: the next-token loss of
``<bos> w1 … wn`` and Marvin & Linzen's minimal pairs (the correct verb form must be more
probable than the wrong one after the prefix; a form of several tokens is scored by the sum of
its tokens' log-probabilities). A continuation whose context is a prefix of its sentence is
read off the sentence's own forward pass; only the others (the wrong form of several BPE
tokens) get a pass of their own. The planted-model test plugs in its own behaviour.

``edited_forward(model, layer, eraser)`` is the forward function with ``eraser`` applied to the
residual stream at ``layer`` (0 = embeddings, ``blocks.0.hook_resid_pre``; l ≥ 1 =
``blocks.{l-1}.hook_resid_post``) at every position, through a TransformerLens hook: our GPT
(native backends) or a TransformerBridge (tl); nnsight backends are refused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from hooks.names import resid_name
from probes.erase_fit import Eraser

Forward = Callable[[Tensor], Tensor]
Measure = tuple[np.ndarray, np.ndarray]  # per unit: (numerator, denominator)
LOGIT_BUDGET = 1 << 26  # logits per forward batch (256 MiB of float32)


class Behaviour(Protocol):
    """Measures of a model's behaviour per unit (see module doc)."""

    n_units: int

    def measure(self, forward: Forward) -> dict[str, Measure | None]: ...


# ----------------------------------------------------------------------------- forward passes
def check_erasable(model: Any) -> None:
    """ValueError (one line) unless ``model`` takes TransformerLens hooks (native or tl)."""
    kind = getattr(model, "kind", None)
    inner = getattr(model, "model", model)
    if kind == "nnsight" or not hasattr(inner, "run_with_hooks") or not hasattr(inner, "hook_dict"):
        name = model.metadata.name if hasattr(model, "metadata") else type(model).__name__
        raise ValueError(f"erasure needs a native or tl backend (it hooks the residual stream); {name} is "
                         f"{'an nnsight backend' if kind == 'nnsight' else type(inner).__name__}")


def n_layers_of(model: Any) -> int:
    if hasattr(model, "n_layer") and isinstance(model.n_layer, int):
        return model.n_layer
    cfg = getattr(model, "model", model).cfg
    return getattr(cfg, "n_layers", None) or cfg.n_layer


def edited_forward(model: Any, layer: int | None = None, eraser: Eraser | None = None) -> Forward:
    """ids → logits (float32), with ``eraser`` applied at residual layer ``layer`` (None: clean)."""
    from hooks.interventions import run_with_hooks

    check_erasable(model)
    hooks: list[tuple[str, Callable[..., Tensor]]] = []
    if eraser is not None and eraser.rank > 0:
        name = resid_name(int(layer), n_layers_of(model))  # type: ignore[arg-type]
        cache: dict[tuple[Any, Any], Eraser] = {}

        def erase(x: Tensor, hook: Any = None) -> Tensor:
            key = (x.device, x.dtype)
            if key not in cache:
                cache[key] = eraser.to(x.device, x.dtype)
            return cache[key](x)

        hooks.append((name, erase))

    def forward(ids: Tensor) -> Tensor:
        return run_with_hooks(model, ids, hooks).float()

    return forward


# ----------------------------------------------------------------------------- the LM behaviour
@dataclass
class _Rows:
    """Token rows sorted by length, and the log-probabilities to read from them: item i is
    log p(item_tok[i] | ids[item_row[i]][: item_pos[i] + 1])."""

    ids: list[tuple[int, ...]]
    item_row: np.ndarray
    item_pos: np.ndarray
    item_tok: np.ndarray


class LMBehaviour:
    """Next-token loss and minimal-pair accuracy on held-out sentences (see module doc).

    ``sentences``: the units; ``pairs[u]``: the minimal pairs (prefix, correct, wrong) built from
    sentence u (the prefix is the sentence's first words)."""

    def __init__(self, backend: Any, sentences: Sequence[Any], pairs: Sequence[Sequence[Any]] | None = None,
                 batch_size: int = 32):
        self.n_units = len(sentences)
        self.batch_size = batch_size
        self.pad_id = backend.tokenizer.pad_id
        self.vocab = backend.metadata.vocab_size
        encodings = [backend.encode(s) for s in sentences]
        rows: list[tuple[int, ...]] = [tuple(e.ids) for e in encodings]
        row_of: dict[tuple[int, ...], int] = {}
        items: list[tuple[int, int, int]] = []  # (row, pos, tok)
        self._loss_unit: list[int] = []  # per loss item: its unit
        for u, enc in enumerate(encodings):
            for p in range(len(enc) - 1):
                items.append((u, p, enc.ids[p + 1]))
                self._loss_unit.append(u)
        n_loss = len(items)
        pair_items: list[tuple[int, float]] = []  # per pair item: (pair, ±1)
        self.pair_unit: list[int] = []
        for u, unit_pairs in enumerate(pairs or [[] for _ in sentences]):
            for prefix, correct, wrong in unit_pairs:
                try:
                    both = [(backend.encode([*prefix, correct]), 1.0), (backend.encode([*prefix, wrong]), -1.0)]
                except ValueError:  # the wrong form takes the prefix past the model's context
                    continue
                k = len(self.pair_unit)
                self.pair_unit.append(u)
                for enc, sign in both:
                    start, end = enc.spans[-1]
                    # read off the sentence's pass when every context is a prefix of it
                    row = u if tuple(enc.ids[:end - 1]) == rows[u][:end - 1] else None
                    if row is None:
                        key = tuple(enc.ids)
                        if key not in row_of:
                            row_of[key] = len(rows)
                            rows.append(key)
                        row = row_of[key]
                    for p in range(start, end):
                        items.append((row, p - 1, enc.ids[p]))
                        pair_items.append((k, sign))
        self.n_pairs = len(self.pair_unit)
        self._n_loss = n_loss
        self._pair_index = np.asarray([k for k, _ in pair_items], dtype=np.int64)
        self._pair_sign = np.asarray([s for _, s in pair_items], dtype=np.float64)
        order = sorted(range(len(rows)), key=lambda r: len(rows[r]))
        new_of = np.empty(len(rows), dtype=np.int64)
        new_of[order] = np.arange(len(rows))
        it = np.asarray(items, dtype=np.int64).reshape(-1, 3)
        self._rows = _Rows([rows[r] for r in order], new_of[it[:, 0]], it[:, 1], it[:, 2])
        self.n_tokens = np.bincount(np.asarray(self._loss_unit, dtype=np.int64), minlength=self.n_units
                                    ).astype(np.float64)

    def _batches(self) -> list[tuple[int, int]]:
        """[start, end) row ranges: at most ``batch_size`` rows and ``LOGIT_BUDGET`` logits."""
        out, start, rows = [], 0, self._rows.ids
        while start < len(rows):
            end = start + 1
            while (end < len(rows) and end - start < self.batch_size
                   and (end + 1 - start) * len(rows[end]) * self.vocab <= LOGIT_BUDGET):
                end += 1
            out.append((start, end))
            start = end
        return out

    def logprobs(self, forward: Forward) -> np.ndarray:
        """log p of every item (loss items first, then pair items), float64."""
        r = self._rows
        out = np.empty(len(r.item_row), dtype=np.float64)
        by_row = np.argsort(r.item_row, kind="stable")
        sorted_rows = r.item_row[by_row]
        for start, end in self._batches():
            batch = r.ids[start:end]
            t = max(len(x) for x in batch)
            ids = torch.full((len(batch), t), self.pad_id, dtype=torch.long)
            for i, x in enumerate(batch):
                ids[i, :len(x)] = torch.tensor(x, dtype=torch.long)
            logits = forward(ids)
            lo, hi = np.searchsorted(sorted_rows, [start, end])
            sel = by_row[lo:hi]
            dev = logits.device
            row = torch.as_tensor(r.item_row[sel] - start, device=dev)
            pos = torch.as_tensor(r.item_pos[sel], device=dev)
            tok = torch.as_tensor(r.item_tok[sel], device=dev)
            picked = logits[row, pos, tok] - torch.logsumexp(logits[row, pos], dim=-1)
            out[sel] = picked.double().cpu().numpy()
        return out

    def measure(self, forward: Forward) -> dict[str, Measure | None]:
        lp = self.logprobs(forward)
        loss = np.zeros(self.n_units)
        np.add.at(loss, np.asarray(self._loss_unit, dtype=np.int64), -lp[:self._n_loss])
        out: dict[str, Measure | None] = {"loss": (loss, self.n_tokens), "agreement": None}
        if self.n_pairs:
            margin = np.zeros(self.n_pairs)
            np.add.at(margin, self._pair_index, self._pair_sign * lp[self._n_loss:])
            units = np.asarray(self.pair_unit, dtype=np.int64)
            correct = np.bincount(units, weights=(margin > 0).astype(np.float64), minlength=self.n_units)
            out["agreement"] = (correct, np.bincount(units, minlength=self.n_units).astype(np.float64))
        return out
