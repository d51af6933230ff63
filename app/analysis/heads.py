"""Per-head summaries of attention patterns.

A pattern ``[n_layer, n_head, t, t]`` holds, for each query position q, a distribution over the
key positions k ≤ q. Over the query positions q ≥ 1 (query 0, ``<bos>``, can only attend to
itself) of one or several sentences:

* ``entropy[l, h]``    = mean_q −Σ_k A[q, k] log A[q, k]   (nats; 0 = always one key; log(q+1) = uniform)
* ``prev_token[l, h]`` = mean_q A[q, q − 1]                (1 = a previous-token head)
* ``subject[l, h]``    = mean over (subject, verb) pairs of A[verb, subject]: how much the verb's
  position attends to its subject (token positions of the words' last sub-tokens), the head
  that could carry subject–verb agreement across attractors. NaN when no pair is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class HeadSummary:
    entropy: np.ndarray  # [L, H]
    prev_token: np.ndarray  # [L, H]
    subject: np.ndarray  # [L, H] (NaN without pairs)
    n_queries: int
    n_pairs: int

    def rows(self) -> list[dict[str, Any]]:
        """One row per head (for a table)."""
        L, H = self.entropy.shape
        return [{"layer": l, "head": h, "entropy": float(self.entropy[l, h]),
                 "prev_token": float(self.prev_token[l, h]),
                 "subject_at_verb": None if np.isnan(self.subject[l, h]) else float(self.subject[l, h])}
                for l in range(L) for h in range(H)]


def _as_pattern(p: Any) -> np.ndarray:
    from app.analysis.stream import as_numpy

    x = as_numpy(p)
    if x.ndim != 4 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"a pattern must be [n_layer, n_head, t, t], got shape {x.shape}")
    return x


def head_summary(patterns: Any | Sequence[Any], pairs: Sequence[Sequence[tuple[int, int]]] | Sequence[tuple[int, int]] | None = None
                 ) -> HeadSummary:
    """Summaries over one pattern [L, H, t, t] or a list of them (one per sentence).

    pairs: (subject token, verb token) positions — a list of pairs for one pattern, or one such
    list per pattern. Pairs whose subject is not before the verb are ignored.
    """
    if isinstance(patterns, (list, tuple)):
        pats = [_as_pattern(p) for p in patterns]
        pair_lists = list(pairs) if pairs is not None else [[] for _ in pats]
    else:
        pats = [_as_pattern(patterns)]
        pair_lists = [list(pairs or [])]
    if not pats:
        raise ValueError("no attention patterns to summarise")
    if len(pair_lists) != len(pats):
        raise ValueError(f"{len(pair_lists)} lists of (subject, verb) pairs for {len(pats)} patterns")
    L, H = pats[0].shape[:2]
    ent_sum = np.zeros((L, H))
    prev_sum = np.zeros((L, H))
    subj_sum = np.zeros((L, H))
    n_q = n_pairs = 0
    for p, sv in zip(pats, pair_lists):
        if p.shape[:2] != (L, H):
            raise ValueError(f"patterns of different shapes: {p.shape[:2]} vs {(L, H)}")
        t = p.shape[-1]
        if t >= 2:
            q = p[:, :, 1:, :]  # queries 1..t-1
            with np.errstate(divide="ignore", invalid="ignore"):
                ent = -np.where(q > 0, q * np.log(np.where(q > 0, q, 1.0)), 0.0).sum(-1)  # [L, H, t-1]
            ent_sum += ent.sum(-1)
            idx = np.arange(1, t)
            prev_sum += p[:, :, idx, idx - 1].sum(-1)
            n_q += t - 1
        for s, v in sv:
            if 0 <= s < v < t:
                subj_sum += p[:, :, v, s]
                n_pairs += 1
    nan = np.full((L, H), np.nan)
    return HeadSummary(entropy=ent_sum / n_q if n_q else nan, prev_token=prev_sum / n_q if n_q else nan,
                       subject=subj_sum / n_pairs if n_pairs else nan, n_queries=n_q, n_pairs=n_pairs)


def subject_verb_pairs(sentence: Any) -> list[tuple[int, int]]:
    """(subject word, verb word) 0-based indices of a corpus Sentence, subject before verb.

    From the treebank's MISC ``Subj`` at each verb when present, else from UD's ``nsubj``
    relations (any UD treebank).
    """
    words = sentence.words
    index = {w.id: i for i, w in enumerate(words)}
    pairs = []
    for i, w in enumerate(words):
        subj = (w.misc or {}).get("Subj")
        if subj is not None and str(subj).isdigit() and int(subj) in index:
            pairs.append((index[int(subj)], i))
    if not pairs:
        for i, w in enumerate(words):
            if str(w.deprel).split(":")[0] == "nsubj" and w.head in index:
                pairs.append((i, index[w.head]))
    return sorted({(s, v) for s, v in pairs if s < v})
