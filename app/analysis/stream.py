"""Per-block statistics of the residual stream, and how each layer moved between checkpoints.

Input: the residual stream ``[n_layer + 1, n, d]`` (layer 0 = embeddings, layer ℓ = after block
ℓ) at ``n`` token positions — usually every word of a sample of sentences, concatenated (the
dashboard leaves out ``<bos>``, whose stream is the same in every sentence). Each statistic is
computed per position and then averaged over the positions:

* ``norm[ℓ]``       = mean_i ‖x_ℓ,i‖                                       (ℓ = 0 … L)
* ``rel_update[ℓ]`` = mean_i ‖x_ℓ,i − x_ℓ−1,i‖ / ‖x_ℓ−1,i‖                  (ℓ = 1 … L)
* ``cos[ℓ]``        = mean_i cos(x_ℓ,i, x_ℓ−1,i)                            (ℓ = 1 … L)

``rel_update`` says how much block ℓ changed the stream relative to its size; ``cos`` whether it
turned it (1: the block only rescaled or barely touched the stream).

``checkpoint_drift(a, b)``: the same sentences through two checkpoints A and B of one run, per
layer ℓ: ``rel_change[ℓ]`` = mean_i ‖b_ℓ,i − a_ℓ,i‖ / ‖a_ℓ,i‖, ``cos[ℓ]`` = mean_i cos(a_ℓ,i,
b_ℓ,i), and ``cka[ℓ]`` = linear CKA(a_ℓ, b_ℓ) over the positions (invariant to rotations and
scale, so it tells a representation that was re-expressed from one that changed its geometry).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from app.analysis.cka import linear_cka

EPS = 1e-12


def as_numpy(x: Any) -> np.ndarray:
    """float64 numpy array from a numpy array, a torch tensor or nested lists."""
    if hasattr(x, "detach"):
        x = x.detach().to("cpu").double().numpy()
    return np.asarray(x, dtype=np.float64)


def _check(resid: np.ndarray, name: str = "resid") -> np.ndarray:
    if resid.ndim == 2:  # [L+1, d]: one position
        resid = resid[:, None, :]
    if resid.ndim != 3:
        raise ValueError(f"{name} must be [n_layer + 1, positions, d_model], got shape {resid.shape}")
    if resid.shape[0] < 1 or resid.shape[1] < 1:
        raise ValueError(f"{name} has no layers or no positions (shape {resid.shape})")
    return resid


def _norms(x: np.ndarray) -> np.ndarray:
    return np.linalg.norm(x, axis=-1)


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / np.maximum(_norms(a) * _norms(b), EPS)


@dataclass(frozen=True)
class StreamStats:
    """Per-layer statistics; ``rel_update`` and ``cos`` have L entries (blocks 1 … L)."""

    norm: np.ndarray  # [L + 1]
    rel_update: np.ndarray  # [L]: block ℓ = index ℓ − 1
    cos: np.ndarray  # [L]
    n_positions: int

    @property
    def n_layer(self) -> int:
        return len(self.norm) - 1

    def to_dict(self) -> dict[str, Any]:
        return {"norm": self.norm.tolist(), "rel_update": self.rel_update.tolist(), "cos": self.cos.tolist(),
                "n_positions": self.n_positions}


def stream_stats(resid: Any) -> StreamStats:
    """Mean ‖xₗ‖, relative update and cos(xₗ, xₗ₋₁) per block (see module doc)."""
    x = _check(as_numpy(resid))
    norms = _norms(x)  # [L+1, n]
    prev, cur = x[:-1], x[1:]
    rel = _norms(cur - prev) / np.maximum(norms[:-1], EPS)
    return StreamStats(norm=norms.mean(axis=1), rel_update=rel.mean(axis=1), cos=_cos(cur, prev).mean(axis=1),
                       n_positions=x.shape[1])


def checkpoint_drift(a: Any, b: Any) -> dict[str, np.ndarray]:
    """How each layer's representation moved from checkpoint A to checkpoint B (same positions).

    Returns ``rel_change``, ``cos``, ``cka`` (each [L + 1]) and the ``stream_stats`` of both.
    """
    xa, xb = _check(as_numpy(a), "a"), _check(as_numpy(b), "b")
    if xa.shape != xb.shape:
        raise ValueError(f"checkpoints disagree in shape: {xa.shape} vs {xb.shape} (same sentences, same model?)")
    rel = (_norms(xb - xa) / np.maximum(_norms(xa), EPS)).mean(axis=1)
    cos = _cos(xa, xb).mean(axis=1)
    cka = np.array([linear_cka(xa[l], xb[l]) for l in range(xa.shape[0])])
    return {"rel_change": rel, "cos": cos, "cka": cka, "a": stream_stats(xa), "b": stream_stats(xb)}
