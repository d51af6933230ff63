"""Scores and their sentence-level bootstrap.

Every probe is scored on the held-out *test sentences*. Confidence intervals resample those
sentences (not words: the words of a sentence are not independent), B times with replacement:
``Bootstrap`` draws one count matrix ``M [B, S]`` (how often each of the S test sentences appears
in each resample) and every score of every task, layer and model in a run is recomputed from
per-sentence sums with that same matrix. So a resample means the same sentences everywhere,
and derived quantities (selectivity, expected layer, the hierarchy verdict) get their intervals
from the joint distribution at no extra fitting cost.

Scores: accuracy (categorical), R² = 1 − SSE / SS_tot with the test (resample) mean in SS_tot
(ordinal). Intervals are percentile intervals (2.5 %, 97.5 %).
"""

from __future__ import annotations

import warnings

import numpy as np


class Bootstrap:
    """Resampling of S test sentences: counts [B, S] (a multinomial draw per resample)."""

    def __init__(self, n_sentences: int, n_resamples: int = 1000, seed: int = 0):
        if n_sentences < 1:
            raise ValueError("the bootstrap needs at least one test sentence")
        self.n_sentences = int(n_sentences)
        self.n_resamples = int(n_resamples)
        rng = np.random.default_rng(seed)
        if self.n_resamples > 0:
            self.counts = rng.multinomial(self.n_sentences, np.full(self.n_sentences, 1.0 / self.n_sentences),
                                          size=self.n_resamples).astype(np.float64)
        else:
            self.counts = np.zeros((0, self.n_sentences))

    # -- per-sentence sums → per-resample statistics ----------------------------
    def sums(self, sentence: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-sentence totals of ``values [n, ...]`` (words of sentence ``sentence[n]``):
        returns (point total over all sentences, resampled totals [B, ...])."""
        per_sentence = sentence_sums(sentence, values, self.n_sentences)
        flat = per_sentence.reshape(self.n_sentences, -1)
        point = flat.sum(axis=0).reshape(per_sentence.shape[1:])
        boot = (self.counts @ flat).reshape((self.n_resamples, *per_sentence.shape[1:]))
        return point, boot

    def accuracy(self, sentence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """correct [n, ...] (0/1) → (accuracy [...], resampled [B, ...]); NaN where a resample
        holds no labelled word."""
        c_point, c_boot = self.sums(sentence, correct.astype(np.float64))
        n_point, n_boot = self.sums(sentence, np.ones(len(sentence)))
        with np.errstate(invalid="ignore", divide="ignore"):
            point = c_point / n_point
            boot = c_boot / n_boot.reshape((-1,) + (1,) * (c_boot.ndim - 1))
        return point, boot

    def r2(self, sentence: np.ndarray, y: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """y [n], pred [n, ...] → (R² [...], resampled [B, ...])."""
        y = y.astype(np.float64)
        sse_point, sse_boot = self.sums(sentence, (pred - y.reshape((-1,) + (1,) * (pred.ndim - 1))) ** 2)
        stats = np.stack([np.ones_like(y), y, y * y], axis=1)
        s_point, s_boot = self.sums(sentence, stats)

        def r2(sse: np.ndarray, s: np.ndarray) -> np.ndarray:
            n, sy, syy = s[..., 0], s[..., 1], s[..., 2]
            with np.errstate(invalid="ignore", divide="ignore"):
                ss_tot = syy - sy * sy / n
                ss_tot = np.where(ss_tot > 1e-12 * np.maximum(syy, 1.0), ss_tot, np.nan)
                return 1.0 - sse / ss_tot.reshape(ss_tot.shape + (1,) * (sse.ndim - ss_tot.ndim))

        return r2(sse_point, s_point), r2(sse_boot, s_boot)


def sentence_sums(sentence: np.ndarray, values: np.ndarray, n_sentences: int) -> np.ndarray:
    """[n_sentences, ...] totals of values [n, ...] grouped by sentence index."""
    values = np.asarray(values, dtype=np.float64)
    out = np.zeros((n_sentences, *values.shape[1:]))
    np.add.at(out, np.asarray(sentence, dtype=np.int64), values)
    return out


def interval(samples: np.ndarray, level: float = 0.95, axis: int = 0) -> np.ndarray:
    """Percentile interval of bootstrap samples along ``axis`` → [..., 2] (NaN-aware)."""
    samples = np.asarray(samples, dtype=np.float64)
    if samples.shape[axis] == 0:
        shape = list(samples.shape)
        del shape[axis]
        return np.full((*shape, 2), np.nan)
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices give NaN, quietly
        q = np.nanpercentile(samples, [lo, hi], axis=axis)
    return np.moveaxis(q, 0, -1)


def spearman(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Spearman rank correlation of y [n] with each column of pred [n, P] (average ranks)."""
    from scipy.stats import rankdata

    ry = rankdata(y)
    rp = rankdata(pred, axis=0)
    ry = ry - ry.mean()
    rp = rp - rp.mean(axis=0)
    denom = np.sqrt((ry ** 2).sum() * (rp ** 2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (ry[:, None] * rp).sum(axis=0) / denom, np.nan)
