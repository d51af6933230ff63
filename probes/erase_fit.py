"""Erasers: affine maps that remove a concept's linear subspace from one layer's residual stream.

``Eraser`` is ``x ↦ x − ((x − μ) Rᵀ) Lᵀ`` with ``L`` [d, r] and ``R`` [r, d]: the identity outside
a rank-r subspace. Three ways to get one:

* ``fit_leace`` — LEACE (Belrose et al. 2023, the ``concept-erasure`` package): the least-change
  affine map after which no linear classifier predicts the concept better than a constant on
  the fitting data. Its rank is that of the class-mean differences (≤ K − 1).
* ``fit_inlp`` — INLP (Ravfogel et al. 2020): fit a logistic probe, project its weight
  directions out, repeat until the probe is at the majority baseline on held-out words (or a
  maximum number of rounds); an orthogonal projection of rank (rounds × up to K − 1).
* ``random_eraser`` — the control: the orthogonal projection of x − μ onto the complement of a
  random rank-r subspace (uniform on the Grassmannian).

``probe_after_erasure`` refits a logistic probe on erased training features and scores it on
erased test features: after a working eraser it sits at the majority baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from probes.fit import Standardizer, fit_logistic

METHODS = ("leace", "inlp")
_RANK_TOL = 1e-6  # singular values of the removed part below this count as zero
_NEW_TOL = 1e-4  # INLP: a probe direction this much (relative) outside the removed span is new


@dataclass(frozen=True)
class Eraser:
    """``x ↦ x − ((x − mean) @ right.T) @ left.T`` on the last axis of x (see module doc)."""

    mean: Tensor  # [d]
    left: Tensor  # [d, r]
    right: Tensor  # [r, d]

    @property
    def rank(self) -> int:
        return int(self.left.shape[1])

    @classmethod
    def identity(cls, mean: Tensor) -> "Eraser":
        d = mean.shape[0]
        return cls(mean, mean.new_zeros(d, 0), mean.new_zeros(0, d))

    @classmethod
    def orthogonal(cls, mean: Tensor, basis: Tensor) -> "Eraser":
        """Project x − mean onto the complement of the span of ``basis`` [d, r] (orthonormal)."""
        return cls(mean, basis, basis.T.contiguous())

    @classmethod
    def from_matrix(cls, mean: Tensor, removed: Tensor) -> "Eraser":
        """The eraser x − (x − mean) @ removed.T, stored at the rank of ``removed`` [d, d]."""
        u, s, vh = torch.linalg.svd(removed.double())
        r = int((s > _RANK_TOL).sum())
        left = (u[:, :r] * s[:r]).to(mean.dtype)
        return cls(mean, left.contiguous(), vh[:r].to(mean.dtype).contiguous())

    def to(self, device: torch.device | str, dtype: torch.dtype) -> "Eraser":
        return Eraser(*(t.to(device=device, dtype=dtype) for t in (self.mean, self.left, self.right)))

    def __call__(self, x: Tensor) -> Tensor:
        if self.rank == 0:
            return x
        return x - ((x - self.mean) @ self.right.T) @ self.left.T


# ----------------------------------------------------------------------------- LEACE
def fit_leace(X: Tensor, y: Tensor, n_classes: int) -> Eraser:
    """LEACE fitted on features X [n, d] with class labels y [n] (one-hot concept), in float64."""
    from concept_erasure import LeaceFitter

    Xd = X.detach().to("cpu", torch.float64)
    z = F.one_hot(torch.as_tensor(y, dtype=torch.long).cpu(), n_classes).to(torch.float64)
    fitter = LeaceFitter(Xd.shape[1], n_classes, dtype=torch.float64).update(Xd, z)
    eraser = fitter.eraser
    removed = eraser.proj_left @ eraser.proj_right  # the map is I − removed, applied to x − mean
    return Eraser.from_matrix(fitter.mean_x.to(torch.float32), removed).to("cpu", torch.float32)


# ----------------------------------------------------------------------------- INLP
def fit_inlp(X_tr: Tensor, y_tr: Tensor, X_va: Tensor, y_va: Tensor, n_classes: int, *, max_rounds: int = 100,
             lam: float = 1e-3, tolerance: float = 0.01, max_iter: int = 1000, tol: float = 1e-4,
             threads: int | None = None) -> list[Eraser]:
    """INLP on P problems at once (one per layer): X_tr [P, n, d], X_va [P, m, d]. A problem stops
    when its probe's validation accuracy is within ``tolerance`` of the majority baseline, or
    after ``max_rounds`` rounds, or when nothing is left to remove. One eraser per problem."""
    P, _, d = X_tr.shape
    K = int(n_classes)
    mean = X_tr.mean(dim=1)  # [P, d]
    # Probes see the features scaled by the unerased features' spread: rescaling by the erased
    # ones' would blow the rounding residue of removed directions up to unit variance.
    scale = Standardizer.fit(X_tr).std  # [P, 1, d]
    majority = int(torch.bincount(y_tr, minlength=K).argmax())
    baseline = float((y_va == majority).double().mean()) if len(y_va) else 1.0
    bases = [X_tr.new_zeros(d, 0) for _ in range(P)]
    active = list(range(P))
    for _ in range(max_rounds):
        if not active:
            break
        tr = torch.stack([_project(X_tr[p] - mean[p], bases[p]) for p in active])
        va = torch.stack([_project(X_va[p] - mean[p], bases[p]) for p in active])
        std = scale[active]
        probe = fit_logistic(tr / std, y_tr, K, lam, max_iter=max_iter, tol=tol, threads=threads)
        acc = (probe.predict(va / std) == y_va).double().mean(dim=1) if len(y_va) else torch.zeros(len(active))
        still = []
        for i, p in enumerate(active):
            if float(acc[i]) <= baseline + tolerance:
                continue
            W = probe.W[i] / std[i, 0, :, None]  # [d, K] in the raw coordinates
            W = W - W.mean(dim=1, keepdim=True)  # softmax is blind to a shift shared by all classes
            new = _new_directions(W, bases[p])
            if new.shape[1] == 0:
                continue
            bases[p] = torch.cat([bases[p], new], dim=1)
            if bases[p].shape[1] < d:
                still.append(p)
        active = still
    return [Eraser.orthogonal(mean[p], bases[p]) if bases[p].shape[1] else Eraser.identity(mean[p])
            for p in range(P)]


def _project(X: Tensor, basis: Tensor) -> Tensor:
    """X with the span of ``basis`` [d, r] (orthonormal) removed."""
    return X if basis.shape[1] == 0 else X - (X @ basis) @ basis.T


def _new_directions(W: Tensor, basis: Tensor) -> Tensor:
    """An orthonormal basis of span(W) outside span(basis) [d, r'], orthogonal to ``basis``.
    Directions whose part outside span(basis) is below ``_NEW_TOL`` of W's norm are dropped
    (they are rounding noise of directions already removed)."""
    Wd, Bd = W.double(), basis.double()
    scale = float(torch.linalg.matrix_norm(Wd, ord=2)) if Wd.numel() else 0.0
    if scale == 0.0:
        return basis.new_zeros(basis.shape[0], 0)
    for _ in range(2):  # twice: one Gram-Schmidt pass loses orthogonality in float arithmetic
        Wd = Wd - Bd @ (Bd.T @ Wd)
    u, s, _ = torch.linalg.svd(Wd, full_matrices=False)
    return u[:, s > _NEW_TOL * scale].to(basis.dtype)


# ----------------------------------------------------------------------------- control
def random_eraser(mean: Tensor, rank: int, seed: Sequence[int]) -> Eraser:
    """The orthogonal projection off a random rank-``rank`` subspace (QR of a Gaussian matrix,
    seeded by the integers ``seed``), centred at ``mean``."""
    d = mean.shape[0]
    if rank == 0:
        return Eraser.identity(mean)
    g = np.random.default_rng(list(seed)).standard_normal((d, rank))
    q, _ = np.linalg.qr(g)
    return Eraser.orthogonal(mean, torch.as_tensor(q, dtype=mean.dtype))


# ----------------------------------------------------------------------------- the check
def probe_after_erasure(erasers: Sequence[Eraser], X_tr: Tensor, y_tr: Tensor, X_te: Tensor, y_te: Tensor,
                        n_classes: int, *, lam: float = 1e-3, max_iter: int = 1000, tol: float = 1e-4,
                        threads: int | None = None) -> np.ndarray:
    """Test-word correctness [n_test, len(erasers)] of a logistic probe refitted on each eraser's
    erased training features (X_tr [n, d]) and scored on its erased test features (X_te [m, d]),
    standardised like the probes with the mean and spread of the unerased training features (the
    erased features' own spread would blow the rounding residue of a removed direction up to
    unit variance)."""
    erasers = [e.to(X_tr.device, X_tr.dtype) for e in erasers]
    std = Standardizer.fit(X_tr[None])
    tr = std(torch.stack([e(X_tr) for e in erasers]))
    te = std(torch.stack([e(X_te) for e in erasers]))
    probe = fit_logistic(tr, y_tr, n_classes, lam, max_iter=max_iter, tol=tol, threads=threads)
    return (probe.predict(te) == y_te).T.cpu().numpy()
