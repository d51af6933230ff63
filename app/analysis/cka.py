"""Linear centred kernel alignment (Kornblith, Norouzi, Lee & Hinton 2019).

For representations X [n, p] and Y [n, q] of the same n positions, with every column centred::

    CKA(X, Y) = ‖YᵀX‖²_F / (‖XᵀX‖_F · ‖YᵀY‖_F)

1 when Y is X up to a rotation and an isotropic scale, 0 when they share no linear structure.
Equivalently, with the Gram matrices K = XXᵀ and L = YYᵀ of the centred representations,
CKA = ⟨K, L⟩_F / (‖K‖_F ‖L‖_F); ``cka_matrix`` uses whichever form is cheaper (Gram matrices
when there are fewer positions than features).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _as2d(x: Any) -> np.ndarray:
    from app.analysis.stream import as_numpy

    x = as_numpy(x)
    if x.ndim != 2:
        raise ValueError(f"a representation must be [positions, features], got shape {x.shape}")
    return x


def _centre(x: np.ndarray) -> np.ndarray:
    return x - x.mean(axis=0, keepdims=True)


def linear_cka(x: Any, y: Any) -> float:
    """Linear CKA of x [n, p] and y [n, q] (NaN when one of them is constant over positions)."""
    x, y = _centre(_as2d(x)), _centre(_as2d(y))
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"CKA needs the same positions: {x.shape[0]} vs {y.shape[0]} rows")
    cross = np.linalg.norm(y.T @ x) ** 2
    den = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    return float(cross / den) if den > 0 else float("nan")


def cka_matrix(resid: Any) -> np.ndarray:
    """Layer × layer linear CKA of a residual stream [n_layer + 1, n, d] → [L + 1, L + 1]."""
    from app.analysis.stream import as_numpy

    x = as_numpy(resid)
    if x.ndim != 3:
        raise ValueError(f"resid must be [n_layer + 1, positions, d_model], got shape {x.shape}")
    n_l, n, d = x.shape
    x = x - x.mean(axis=1, keepdims=True)
    if n <= d:
        grams = np.einsum("lid,ljd->lij", x, x)  # [L+1, n, n], already centred
        flat = grams.reshape(n_l, -1)
        inner = flat @ flat.T  # ⟨K_a, K_b⟩_F
    else:
        inner = np.empty((n_l, n_l))
        for a in range(n_l):
            for b in range(a, n_l):
                inner[a, b] = inner[b, a] = np.linalg.norm(x[b].T @ x[a]) ** 2
    diag = np.sqrt(np.clip(np.diag(inner), 0, None))
    den = np.outer(diag, diag)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 0, inner / np.where(den > 0, den, 1.0), np.nan)
    return out
