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
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from probes.fit import LogisticProbe, fit_logistic

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
                      tol: float = 1e-4, threads: int | None = None) -> dict[str, np.ndarray | float | int]:
    """Online codelength for P problems sharing labels: X [P, n, d] (words already in the
    transmission order), y [n]. Returns {"codelength_bits": [P], "uniform_bits": N·log₂K,
    "compression": [P], "first_block": t₁, "blocks": [ends]}."""
    P, n, _ = X.shape
    K = int(n_classes)
    ends = block_ends(n, fractions)
    log2k = math.log2(K) if K > 1 else 0.0
    bits = torch.full((P,), ends[0] * log2k, dtype=torch.float64, device=X.device)
    probe: LogisticProbe | None = None
    for start, end in zip(ends[:-1], ends[1:]):
        probe = fit_logistic(X[:, :start], y[:start], K, lam, init=probe, max_iter=max_iter, tol=tol,
                             threads=threads)
        logp = probe.log_probs(X[:, start:end])  # [P, m, K]
        nll = -logp.gather(2, y[start:end].reshape(1, -1, 1).expand(P, -1, 1))[..., 0]
        bits += nll.double().sum(dim=1) / math.log(2)
    uniform = n * log2k
    codelength = bits.cpu().numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        compression = np.where(codelength > 0, uniform / codelength, np.nan)
    return {"codelength_bits": codelength, "uniform_bits": float(uniform), "compression": compression,
            "first_block": int(ends[0]), "blocks": ends}
