"""Minimum description length of the labels given the representations: the online code
(Voita & Titov 2020).

The training words (in a seeded random order of their sentences) are cut at the fractions
``BLOCKS`` = 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.25, 12.5, 25, 50, 100 % into blocks. The first
block (t₁ words) is sent with the uniform code, t₁·log₂K bits; each following block i+1 is sent
with the probe trained on blocks 1..i, costing Σ −log₂ p(y | x) bits over its words::

    L_online = t₁·log₂K + Σ_i codelength(block i+1 | probe on blocks 1..i)
    compression = N·log₂K / L_online        (N words, K classes; 1 = no better than uniform)

Every layer is coded at once (the probes for all layers are one batched fit); each layer uses
the L2 strength its full probe chose on the validation split, and each block's fit starts from
the previous block's solution. Categorical tasks only.

Each word's share of the code is kept (``word_bits``: log₂K for the words of the first block, its
−log₂ p(y | x) under the probe that sent it for the others), so a resample of the training
sentences recomputes every layer's codelength as a weighted sum, with no refit
(``resampled_codelengths``; the intervals of the MDL expected layer, ``probes.depth``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from probes.fit import GramBasis, LogisticProbe, fit_logistic
from probes.metrics import Bootstrap

BLOCKS: tuple[float, ...] = (0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.0625, 0.125, 0.25, 0.5, 1.0)


def block_ends(n: int, fractions: tuple[float, ...] = BLOCKS) -> list[int]:
    """Word counts at each cut (strictly increasing, first ≥ 1, last = n)."""
    if n < 2:
        raise ValueError(f"MDL needs at least 2 training words, got {n}")
    ends = []
    for f in fractions:
        e = min(n, max(1, int(round(f * n))))
        if ends and e <= ends[-1]:
            continue
        ends.append(e)
    if ends[-1] != n:
        ends.append(n)
    return ends


def online_codelength(X: Tensor, y: Tensor, n_classes: int, lam: float | Tensor, *,
                      fractions: tuple[float, ...] = BLOCKS, max_iter: int = 100,
                      tol: float = 1e-4, threads: int | None = None, word_bits: bool = False,
                      basis: GramBasis | None = None, progress: Callable[[int], None] | None = None
                      ) -> dict[str, np.ndarray | float | int]:
    """Online codelength for P problems sharing labels: X [P, n, d] (words already in the
    transmission order), y [n]. Returns {"codelength_bits": [P], "uniform_bits": N·log₂K,
    "compression": [P], "first_block": t₁, "blocks": [ends]}, and with ``word_bits`` also
    "word_bits": [P, n], each word's bits in the transmission order (they sum to the codelength).

    ``basis``: the ``GramBasis`` of all of X, the preconditioner of every block's fit (it only
    shapes the path to each block's optimum; computed from each block's words otherwise).
    ``progress(1)``: called after each block."""
    P, n, _ = X.shape
    K = int(n_classes)
    ends = block_ends(n, fractions)
    log2k = math.log2(K) if K > 1 else 0.0
    bits = torch.full((P,), ends[0] * log2k, dtype=torch.float64, device=X.device)
    per_word = [torch.full((P, ends[0]), log2k, dtype=torch.float64, device=X.device)] if word_bits else []
    probe: LogisticProbe | None = None
    for start, end in zip(ends[:-1], ends[1:]):
        # below d words the preconditioner's d × d products cost more than the objective it saves
        small = start < X.shape[2]
        probe = fit_logistic(X[:, :start], y[:start], K, lam, init=probe, max_iter=max_iter, tol=tol,
                             threads=threads, basis=basis, precondition=None if small else "adaptive")
        logp = probe.log_probs(X[:, start:end])  # [P, m, K]
        nll = -logp.gather(2, y[start:end].reshape(1, -1, 1).expand(P, -1, 1))[..., 0]
        bits += nll.double().sum(dim=1) / math.log(2)
        if word_bits:
            per_word.append(nll.double() / math.log(2))
        if progress is not None:
            progress(1)
    uniform = n * log2k
    codelength = bits.cpu().numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        compression = np.where(codelength > 0, uniform / codelength, np.nan)
    out: dict[str, np.ndarray | float | int] = {
        "codelength_bits": codelength, "uniform_bits": float(uniform), "compression": compression,
        "first_block": int(ends[0]), "blocks": ends}
    if word_bits:
        out["word_bits"] = torch.cat(per_word, dim=1).cpu().numpy()
    return out


def resampled_codelengths(word_bits: np.ndarray, uniform_per_word: float, sentence: np.ndarray,
                          bootstrap: Bootstrap) -> tuple[np.ndarray, np.ndarray]:
    """Each resample's codelength per layer and its uniform codelength, from the words' bits
    ``word_bits [P, n]`` (any order) and each word's sentence ``sentence [n]`` (its index among the
    bootstrap's sentences): (codelength [B, P], uniform [B]). A word counts as often as its
    sentence is drawn; the codes themselves are not refitted."""
    _, codelength = bootstrap.sums(sentence, np.asarray(word_bits, dtype=np.float64).T)
    _, words = bootstrap.sums(sentence, np.ones(len(sentence)))
    return codelength, words * uniform_per_word
