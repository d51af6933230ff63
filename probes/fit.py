"""Linear probes fitted for many layers at once, in torch (CPU or GPU).

Every function here works on a *batch of problems* that share their labels: features
``X [P, n, d]`` (one slice per layer, or per cumulative probe) and labels ``y [n]``. The P
problems are independent; they are solved together because one batched matrix product over
``[P, n, d] @ [P, d, K]`` is far cheaper than P small ones.

Objectives (per problem p, features standardised on the training words):

* categorical — multinomial logistic regression,
  ``mean_i CE(softmax(x_i W_p + b_p), y_i) + λ_p/2 · ‖W_p‖²`` (bias not penalised; with two
  classes λ is doubled, which makes it exactly the binary model with penalty λ/2‖w₁ − w₀‖²),
  minimised
  by a batched L-BFGS (per-problem curvature and line search, ``lbfgs``). This is scikit-learn's
  ``LogisticRegression(C=1/(λ·n))`` objective (its ``C·Σ CE + ½‖W‖²`` divided by ``C·n``).
* ordinal — ridge regression, ``mean_i (x_i w_p + b_p − y_i)² + λ_p · ‖w_p‖²`` in closed form
  from one eigendecomposition of the centred Gram matrix per problem (every λ of the grid then
  costs a matrix–vector product): scikit-learn's ``Ridge(alpha=λ·n)``.

``select_logistic`` / ``select_ridge`` fit a grid of λ (strong to weak, each L-BFGS run
warm-started from the previous solution) and keep, per problem, the λ with the best validation
score (accuracy, ties broken by validation log-loss; R² for ridge); given test rows (``X_te``,
``y_te``) they also return every λ's test score, and ``selected_scores`` reads the selected λ's.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, overload

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

DEFAULT_LAMBDAS: tuple[float, ...] = (1e-1, 1e-2, 1e-3, 1e-4)
DEFAULT_RIDGE_LAMBDAS: tuple[float, ...] = (10.0, 1.0, 1e-1, 1e-2, 1e-3)


# ----------------------------------------------------------------------------- threads
SMALL_WORK = 1e8  # multiply-adds per evaluation below which one thread is faster
CHUNK_ELEMENTS = 1 << 19  # logits per row chunk of a CPU evaluation (2 MiB of float32: stays in cache)


@contextmanager
def num_threads(n: int | None):
    """Run a block with ``torch.set_num_threads(n)`` (None: unchanged), then restore."""
    before = torch.get_num_threads()
    if n is None or n == before:
        yield
        return
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def auto_threads(work: float, device: torch.device, threads: int | None) -> int | None:
    """Threads for a CPU fit: ``threads`` if given; else 1 for small problems (intra-op
    parallelism costs more than it gains there); else torch's setting, reduced to the cores that
    *other* processes leave idle by the 1-minute load average (on a shared machine oversubscribed
    OpenMP threads spin at their barriers: measured 4× slower on 2 busy cores). The load average
    counts this process too, so its own recent CPU use is taken out first (``_own_load``):
    otherwise a probing run that has kept one core busy for a minute sees that core as taken
    and halves itself."""
    if device.type != "cpu":
        return None
    if threads is not None:
        return threads
    if work < SMALL_WORK:
        return 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # pragma: no cover - no load average on this platform
        return None
    others = max(0.0, load - _own_load())
    idle = (os.cpu_count() or 1) - others
    return max(1, min(torch.get_num_threads(), int(idle + 0.5)))


_OWN_LOAD_WINDOW_S = 60.0  # the load average's horizon
# (wall, process CPU seconds), oldest first; the first is taken when this module is imported
_own_samples: list[tuple[float, float]] = [(time.monotonic(), time.process_time())]


def _own_load() -> float:
    """This process's CPU use over about the last minute (since import at first), in cores."""
    now, cpu = time.monotonic(), time.process_time()
    _own_samples.append((now, cpu))
    while len(_own_samples) > 2 and now - _own_samples[1][0] >= _OWN_LOAD_WINDOW_S:
        _own_samples.pop(0)
    then, cpu_then = _own_samples[0]
    if now - then < 1.0:  # too short to tell: count all of the load as others'
        return 0.0
    return (cpu - cpu_then) / (now - then)


# ----------------------------------------------------------------------------- standardising
@dataclass
class Standardizer:
    """Per-problem, per-feature mean and standard deviation (from training rows)."""

    mean: Tensor  # [P, 1, d]
    std: Tensor  # [P, 1, d]

    @classmethod
    def fit(cls, X: Tensor, eps: float = 1e-6) -> Standardizer:
        mean = X.mean(dim=1, keepdim=True)
        std = X.std(dim=1, keepdim=True, unbiased=False).clamp_min(eps)
        return cls(mean, std)

    def __call__(self, X: Tensor) -> Tensor:
        return (X - self.mean) / self.std

    def apply_(self, X: Tensor) -> Tensor:
        """In place."""
        return X.sub_(self.mean).div_(self.std)


# ----------------------------------------------------------------------------- the Gram eigenbasis
@dataclass
class GramBasis:
    """The eigendecomposition of each problem's centred Gram matrix XcᵀXc/n (float64): the
    logistic preconditioner, the ridge path and the cumulative probes' PCA all need it, and on
    the same training words it is the same matrix, so a task computes it once
    (``probes.strategy.TaskSplit.features``) instead of once per fit (at d = 768 one
    decomposition of 13 layers costs as much as a dozen objective evaluations)."""

    evals: Tensor  # [P, d], ascending, clamped at 0
    evecs: Tensor  # [P, d, d]
    mean: Tensor  # [P, 1, d] the feature means the Gram was centred on
    n: int

    @classmethod
    def of(cls, X: Tensor, centre: bool = True) -> GramBasis:
        """From X [P, n, d] (``centre=False``: the plain XᵀX/n, mean 0); one problem at a time
        in float64 (no float64 copy of all of X)."""
        P, n, d = X.shape
        gram = torch.empty((P, d, d), dtype=torch.float64, device=X.device)
        mean = torch.zeros((P, 1, d), dtype=torch.float64, device=X.device)
        for p in range(P):
            Xp = X[p].double()
            if centre:
                mean[p, 0] = Xp.mean(dim=0)
                Xp -= mean[p]
            torch.matmul(Xp.T, Xp, out=gram[p])
        gram /= max(n, 1)
        evals, evecs = torch.linalg.eigh(gram)
        return cls(evals.clamp_min(0.0), evecs, mean, n)

    @classmethod
    def from_gram(cls, gram: Tensor, n: int) -> GramBasis:
        """From uncentred Gram matrices [P, d, d] (features of mean 0: the means are taken as 0)."""
        evals, evecs = torch.linalg.eigh(gram.double())
        return cls(evals.clamp_min(0.0), evecs, gram.new_zeros((gram.shape[0], 1, gram.shape[1]), dtype=torch.float64), n)

    def select(self, index: Tensor | list[int]) -> GramBasis:
        return GramBasis(self.evals[index], self.evecs[index], self.mean[index], self.n)


# ----------------------------------------------------------------------------- logistic
@dataclass
class LogisticProbe:
    W: Tensor  # [P, d, K]
    b: Tensor  # [P, K]
    lam: Tensor  # [P]
    n_iter: int = 0

    def logits(self, X: Tensor, chunk: int = 65536) -> Tensor:
        """[P, m, K] for X [P, m, d]."""
        if X.shape[1] <= chunk:
            return torch.baddbmm(self.b[:, None, :], X, self.W)
        return torch.cat([torch.baddbmm(self.b[:, None, :], X[:, i:i + chunk], self.W)
                          for i in range(0, X.shape[1], chunk)], dim=1)

    def log_probs(self, X: Tensor) -> Tensor:
        return torch.log_softmax(self.logits(X), dim=-1)

    def predict(self, X: Tensor) -> Tensor:
        return self.logits(X).argmax(dim=-1)

    def select(self, index: Tensor | list[int]) -> LogisticProbe:
        return LogisticProbe(self.W[index], self.b[index], self.lam[index], self.n_iter)


def _as_lam(lam: float | Tensor | np.ndarray | list[float], P: int, device: torch.device) -> Tensor:
    t = torch.as_tensor(lam, dtype=torch.float32, device=device)
    return t.expand(P).clone() if t.dim() == 0 else t.reshape(P)


class Objective(Protocol):
    """What ``lbfgs`` minimises: P independent problems over flat parameters ``x [P, D]``.
    Called with the parameters of the problems ``idx [p]`` (``x [p, D]``), it returns their
    values ``f [p]`` and gradients ``g [p, D]``."""

    def __call__(self, x: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]: ...


class Preconditioner(Protocol):
    """``M·q`` for the problems ``idx``, with M ≈ the inverse Hessian: the initial inverse
    Hessian of L-BFGS (instead of a scaled identity)."""

    def __call__(self, q: Tensor, idx: Tensor) -> Tensor: ...


PRECONDITIONERS = ("adaptive", None)


class _LogisticObjective:
    """Mean cross-entropy + λ/2‖W‖² and its gradient for a subset of the P problems (an
    ``Objective``).

    Parameters are flat per problem: ``x [p, K·d + K]`` = Wᵀ [K, d] then b [K]. Logits are
    computed class-major, ``[p, K, c] = Wᵀ @ Xᵀ`` for blocks of c rows (Xᵀ a view, no copy): the
    softmax then runs along a long contiguous axis, and a block's logits stay in cache through
    its passes (on the demo model's word task: 1.75× faster per evaluation than all rows at
    once). With ``precondition="adaptive"`` each evaluation also records the class curvature
    mean_i p_ik(1 − p_ik) of its point, which ``inverse_hessian`` (a ``Preconditioner``) then
    uses, with the eigenbasis of the features' Gram matrix (``basis``: given, or computed from
    X). A preconditioner only shapes the path, not the optimum: the Gram of a superset of the
    rows (all training words, for an MDL block) serves as well."""

    def __init__(self, X: Tensor, y: Tensor, n_classes: int, lam: Tensor, precondition: str | None = None,
                 chunk: int | None = None, basis: GramBasis | None = None):
        if precondition not in PRECONDITIONERS:
            raise ValueError(f"precondition must be 'adaptive' or None, got {precondition!r}")
        self.X, self.K, self.lam, self.chunk = X, n_classes, lam, chunk
        self.P, self.n, self.d = X.shape
        self.y = y.reshape(1, 1, -1)
        self.preconditioned = precondition == "adaptive"
        self._logits_buf: Tensor | None = None
        self._minus_one = torch.full((1, 1, self.n), -1.0, dtype=X.dtype, device=X.device)
        if self.preconditioned:
            basis = basis or GramBasis.of(X, centre=False)
            self._gram_evals, self._gram_evecs = basis.evals.to(X.dtype), basis.evecs.to(X.dtype)
            self._class_counts = torch.bincount(y, minlength=n_classes).to(X.dtype)
            pi = self._class_counts / max(self.n, 1)
            # the class curvature before the first evaluation: π(1 − π) from the class frequencies
            c = (pi * (1 - pi)).clamp_min(1.0 / max(self.n, 1))
            self.class_curvature = c.expand(self.P, n_classes).clone()  # [P, K]

    def inverse_hessian(self, q: Tensor, idx: Tensor) -> Tensor:
        """M·q with M ≈ inverse Hessian: per class k, (c_k·XᵀX/n + λ)⁻¹ on the weights (in the
        eigenbasis of XᵀX/n), 1/c_k on the bias."""
        p, d, K = len(idx), self.d, self.K
        full = p == self.P
        V = self._gram_evecs if full else self._gram_evecs[idx]
        e = self._gram_evals if full else self._gram_evals[idx]
        lam = self.lam[idx]
        WT = q[:, : K * d].reshape(p, K, d)
        Z = torch.bmm(WT, V)  # [p, K, d] in the eigenbasis
        c = self.class_curvature[idx]  # [p, K]
        Z = Z / (c[:, :, None] * e[:, None, :] + lam[:, None, None])
        W2 = torch.bmm(Z, V.transpose(1, 2))
        b2 = q[:, K * d:] / c
        return torch.cat([W2.reshape(p, K * d), b2], dim=1)

    def __call__(self, x: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
        if len(idx) == self.P:
            return self._evaluate(self.X, x, idx)
        # Some problems have converged: evaluate the others one at a time on views of X (a copy
        # of the active problems' features would cost up to another X in memory).
        parts = [self._evaluate(self.X[j:j + 1], x[i:i + 1], idx[i:i + 1]) for i, j in enumerate(idx.tolist())]
        return torch.cat([f for f, _ in parts]), torch.cat([g for _, g in parts])

    def _evaluate(self, X: Tensor, x: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
        """Values and gradients of the problems ``idx`` whose features are ``X`` [p, n, d]."""
        p, n, d, K = len(idx), self.n, self.d, self.K
        lam = self.lam[idx]
        WT = x[:, : K * d].reshape(p, K, d)
        b = x[:, K * d:, None]  # [p, K, 1]
        c = self._chunk_rows(p)
        buf = self._buffer(p, c)
        f = x.new_zeros(p)
        gW = x.new_zeros(p, K, d)
        gb = x.new_zeros(p, K, 1)
        prob_sq = x.new_zeros(p, K) if self.preconditioned else None  # Σ_i p_ik²
        # Rows in chunks: the logits of a chunk stay in cache through the softmax passes, and the
        # [p, K, c] buffer is reused (a fresh [p, K, n] tensor per call costs as much as a product).
        for s0 in range(0, n, c):
            e = min(n, s0 + c)
            w = e - s0
            Xc = X[:, s0:e]
            L = buf if w == c else buf.new_empty(p, K, w)
            torch.baddbmm(b, WT, Xc.transpose(1, 2), out=L)  # logits [p, K, w], class-major
            y = self.y[:, :, s0:e].expand(p, 1, w)
            L.sub_(L.amax(dim=1, keepdim=True))
            f.sub_(L.gather(1, y).sum(dim=(1, 2)))
            # exp below −87 (a float32 denormal or 0) takes a slow path, 12× slower on this CPU;
            # those terms are < e⁻⁸⁰ ≈ 2e−35 next to the max's 1, so clamping them changes nothing.
            L.clamp_min_(-80.0).exp_()
            z = L.sum(dim=1, keepdim=True)
            f.add_(z.log().sum(dim=(1, 2)))
            L.div_(z)  # L now holds the probabilities
            if prob_sq is not None:
                prob_sq.add_(torch.linalg.vector_norm(L, dim=2).square_())
            L.scatter_add_(1, y, self._minus_one[:, :, :w].expand(p, 1, w))  # softmax − one-hot
            gW.baddbmm_(L, Xc)
            gb.add_(L.sum(dim=2, keepdim=True))
        if prob_sq is not None:  # curvature of this point: mean p(1 − p) per class (Σ p = gb + counts)
            self.class_curvature[idx] = ((gb[..., 0] + self._class_counts) - prob_sq).div_(n).clamp_min_(1.0 / n)
        f = f / n + 0.5 * lam * WT.pow(2).sum(dim=(1, 2))
        gW.div_(n).add_(WT * lam[:, None, None])  # [p, K, d]
        return f, torch.cat([gW.reshape(p, K * d), gb.reshape(p, K).div_(n)], dim=1)

    def _chunk_rows(self, p: int) -> int:
        if self.chunk is not None:
            return max(1, min(self.n, self.chunk))
        if self.X.device.type != "cpu":  # one pass: every extra chunk is more kernel launches
            return max(1, self.n)
        return max(1, min(self.n, max(256, CHUNK_ELEMENTS // max(1, p * self.K))))

    def _buffer(self, p: int, c: int) -> Tensor:
        if self._logits_buf is None or self._logits_buf.shape[2] != c or self._logits_buf.shape[0] < p:
            self._logits_buf = self.X.new_empty(max(p, self.P), self.K, c)
        return self._logits_buf[:p]


# ----------------------------------------------------------------------------- L-BFGS
@dataclass
class _CurvatureMemory:
    """The last m curvature pairs of each problem, in a ring buffer shared by all problems:
    ``steps`` s = x_new − x, ``grad_changes`` y = g_new − g, ``inv_sy`` ρ = 1/(s·y) (0 marks an
    empty or discarded pair); ``slot`` is where the next pair goes."""

    steps: Tensor  # [P, m, D]
    grad_changes: Tensor  # [P, m, D]
    inv_sy: Tensor  # [P, m]
    slot: int = 0

    @classmethod
    def empty(cls, x: Tensor, m: int) -> _CurvatureMemory:
        P, D = x.shape
        return cls(x.new_zeros(P, m, D), x.new_zeros(P, m, D), x.new_zeros(P, m))

    @property
    def size(self) -> int:
        return self.inv_sy.shape[1]

    def compact(self, keep: Tensor) -> _CurvatureMemory:
        """The problems at positions ``keep`` (ascending) of this memory, moved to the front of
        the same buffers: views, not a copy (indexing would hold the old memory and the new
        one at once: 0.8 GB at 250 classes × 768 features × 13 problems). This memory is
        invalid afterwards."""
        for i, j in enumerate(keep.tolist()):
            if i != j:  # j > i: rows only move forward, onto rows already moved or dropped
                self.steps[i].copy_(self.steps[j])
                self.grad_changes[i].copy_(self.grad_changes[j])
                self.inv_sy[i].copy_(self.inv_sy[j])
        p = len(keep)
        return _CurvatureMemory(self.steps[:p], self.grad_changes[:p], self.inv_sy[:p], self.slot)

    def newest_first(self) -> list[int]:
        m = self.size
        return [(self.slot - 1 - j) % m for j in range(m)]

    def push(self, s: Tensor, y: Tensor, keep: Tensor, forget: Tensor) -> None:
        """Store the pair (s, y) for the problems ``keep`` whose curvature s·y is positive (an
        empty slot for the others), wipe the memory of the problems ``forget``, advance."""
        sy = (s * y).sum(dim=1)
        keep = (sy > 1e-10 * (y * y).sum(dim=1).clamp_min(1e-30)) & keep
        k = self.slot
        self.steps[:, k] = torch.where(keep[:, None], s, self.steps[:, k])
        self.grad_changes[:, k] = torch.where(keep[:, None], y, self.grad_changes[:, k])
        self.inv_sy[:, k] = torch.where(keep, 1.0 / sy.clamp_min(1e-30), torch.zeros_like(sy))
        if bool(forget.any()):
            self.steps[forget] = 0.0
            self.grad_changes[forget] = 0.0
            self.inv_sy[forget] = 0.0
        self.slot = (k + 1) % self.size


def _direction(g: Tensor, mem: _CurvatureMemory, moving: Tensor, precondition: Preconditioner | None,
               batch: Tensor) -> tuple[Tensor, Tensor]:
    """The two-loop recursion: the direction −H·g (zero for problems that no longer move) and
    its slope g·d."""
    order = mem.newest_first()
    S, Y, rho = mem.steps, mem.grad_changes, mem.inv_sy
    q = g.clone()
    alpha = g.new_zeros(len(batch), mem.size)
    for i in order:
        alpha[:, i] = rho[:, i] * torch.linalg.vecdot(S[:, i], q)
        q.addcmul_(Y[:, i], alpha[:, i, None], value=-1.0)
    newest = order[0]
    sy = (S[:, newest] * Y[:, newest]).sum(dim=1)
    first_step = torch.clamp(1.0 / g.abs().sum(dim=1).clamp_min(1e-12), max=1.0)
    if precondition is not None:
        My = precondition(Y[:, newest], batch)
        yMy = (Y[:, newest] * My).sum(dim=1)
        gamma = torch.where((yMy > 0) & (sy > 0), sy / yMy.clamp_min(1e-30), torch.ones_like(sy))
        r = gamma[:, None] * precondition(q, batch)
    else:
        yy = (Y[:, newest] * Y[:, newest]).sum(dim=1)
        gamma = torch.where((yy > 0) & (sy > 0), sy / yy.clamp_min(1e-30), first_step)
        r = gamma[:, None] * q
    for i in reversed(order):
        beta = rho[:, i] * torch.linalg.vecdot(Y[:, i], r)
        r.addcmul_(S[:, i], (alpha[:, i] - beta)[:, None])
    d = r.mul_(-moving.to(r.dtype)[:, None])  # −H·g, zero for problems already done
    slope = (g * d).sum(dim=1)
    uphill = (slope >= 0) & moving
    if bool(uphill.any()):  # not a descent direction: fall back to steepest descent
        d = torch.where(uphill[:, None], -g * first_step[:, None], d)
        slope = (g * d).sum(dim=1)
    return d, slope


def _line_search(objective: Objective, batch: Tensor, x: Tensor, f: Tensor, d: Tensor, slope: Tensor,
                 moving: Tensor, max_halvings: int) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
    """Backtracking from step 1 along ``d``, halving per problem until accepted. Returns (x, f,
    g at the last trial, accepted per problem, evaluations)."""
    step = torch.ones(len(batch), dtype=x.dtype, device=x.device)
    # Accept a step by Armijo, or by Hager & Zhang's approximate Wolfe conditions (the slope
    # has risen to σ·φ'(0) but not past −φ'(0), and f has not grown beyond its rounding
    # noise): near the optimum of a flat objective the decrease Armijo asks for is below
    # float32 resolution, while the gradients are still accurate (≈1e-7 here).
    noise = 16 * torch.finfo(x.dtype).eps * f.abs().clamp_min(1.0)
    accepted = torch.zeros_like(moving)
    evals = 0
    for _ in range(max_halvings):
        x_new = x + step[:, None] * d
        f_new, g_new = objective(x_new, batch)
        evals += 1
        slope_new = (g_new * d).sum(dim=1)
        armijo = f_new <= f + 1e-4 * step * slope
        wolfe = (f_new <= f + noise) & (slope_new >= 0.9 * slope) & (slope_new <= -slope)
        accepted = (armijo | wolfe) & torch.isfinite(f_new) & torch.isfinite(g_new).all(dim=1)
        if bool((accepted | ~moving).all()):
            break
        step = torch.where(accepted, step, step * 0.5)
    return x_new, f_new, g_new, accepted, evals


def lbfgs(objective: Objective, x: Tensor, *, precondition: Preconditioner | None = None, max_iter: int = 100,
          tol: float = 1e-4, history: int = 20, max_halvings: int = 30,
          problems: Tensor | None = None) -> tuple[Tensor, int, int]:
    """Batched L-BFGS: P independent problems, each with its own curvature pairs and its own
    backtracking line search (Armijo, or approximate Wolfe within rounding noise); problems
    leave the batch as they converge.

    ``objective(x [p, D], idx [p]) → (f [p], g [p, D])`` for the problems ``idx`` (an
    ``Objective``); ``precondition``: the initial inverse Hessian (a ``Preconditioner``; None: a
    scaled identity). Stops a problem when its largest gradient entry is ≤ tol (scikit-learn's
    lbfgs criterion), or when its line search fails twice in a row (the second time from a fresh
    memory: no step of the preconditioned gradient direction improves it). ``problems``: indices
    of the problems to solve (default all); the others keep their x and are never evaluated.
    Returns (x, iterations, evaluations)."""
    x = x.clone()
    P = x.shape[0]
    if problems is None:
        f, g = objective(x, torch.arange(P, device=x.device))
        active = g.abs().amax(dim=1) > tol
    else:  # only these problems move; the others keep x (and are never evaluated)
        f, g = x.new_zeros(P), torch.zeros_like(x)
        f[problems], g[problems] = objective(x[problems], problems)
        active = torch.zeros(P, dtype=torch.bool, device=x.device)
        active[problems] = g[problems].abs().amax(dim=1) > tol
    evals = 1
    # Problems only ever leave the active set, so the curvature memory is kept for the active
    # problems alone (``mem_ids``) and compacted when some leave: no copy out and back per
    # iteration (at 250 classes × 768 features the memory of 13 problems is 400 MB).
    mem_ids = active.nonzero()[:, 0]
    mem = _CurvatureMemory.empty(x[mem_ids] if len(mem_ids) < P else x, history)
    failures = torch.zeros(P, dtype=torch.long, device=x.device)  # consecutive failed line searches
    it = 0
    for it in range(1, max_iter + 1):
        if not bool(active.any()):
            it -= 1
            break
        batch = active.nonzero()[:, 0]  # the problems evaluated this iteration
        if len(batch) < len(mem_ids):
            mem = mem.compact(torch.searchsorted(mem_ids, batch))
            mem_ids = batch
        full = len(batch) == P
        xb, fb, gb = (x, f, g) if full else (x[batch], f[batch], g[batch])
        moving = active[batch]  # problems of the batch that still move
        d, slope = _direction(gb, mem, moving, precondition, batch)
        x_new, f_new, g_new, accepted, n_evals = _line_search(objective, batch, xb, fb, d, slope, moving, max_halvings)
        evals += n_evals
        # A failed line search leaves the problem where it was and forgets its curvature pairs
        # (they made a bad direction); failing again from a fresh start means it cannot improve.
        failed = moving & ~accepted
        if bool(failed.any()):
            x_new = torch.where(failed[:, None], xb, x_new)
            f_new = torch.where(failed, fb, f_new)
            g_new = torch.where(failed[:, None], gb, g_new)
        mem.push(x_new - xb, g_new - gb, moving & ~failed, failed)
        fail_count = failures if full else failures[batch]
        fail_count = torch.where(failed, fail_count + 1, torch.zeros_like(fail_count))
        converged = g_new.abs().amax(dim=1) <= tol
        still = moving & ~(converged | (fail_count >= 2))
        if full:
            x, f, g, failures, active = x_new, f_new, g_new, fail_count, still
        else:
            x[batch], f[batch], g[batch] = x_new, f_new, g_new
            failures[batch] = fail_count
            active[batch] = still
    return x, it, evals


def fit_logistic(X: Tensor, y: Tensor, n_classes: int, lam: float | Tensor, *,
                 init: LogisticProbe | None = None, max_iter: int = 100, tol: float = 1e-4,
                 history: int = 20, threads: int | None = None, precondition: str | None = "adaptive",
                 chunk: int | None = None, basis: GramBasis | None = None,
                 problems: Tensor | None = None) -> LogisticProbe:
    """Multinomial logistic regression for P problems at once (see module doc), by batched
    L-BFGS (``lbfgs``).

    X [P, n, d] float, y [n] long in [0, n_classes). lam: one λ or one per problem. ``tol``
    bounds the largest gradient entry of the mean-loss objective at convergence (the
    criterion scikit-learn's lbfgs solver uses with its default tol=1e-4). ``threads``: torch
    intra-op threads for this fit (None: 1 for small problems, else torch's setting).
    ``precondition``: the initial inverse Hessian of L-BFGS, per class k (c_k·XᵀX/n + λ)⁻¹ on the
    weights (in the eigenbasis of XᵀX/n, which undoes the correlation of residual-stream features)
    and 1/c_k on the bias, with the class curvature c_k from
    "adaptive" (default): mean_i p_ik(1 − p_ik) at the current iterate — the diagonal of the
    Hessian's class blocks with the feature weighting averaged out, re-read at every point (it
    starts from π_k(1 − π_k), the class frequencies'); None: the usual scaled identity. Both
    reach the same optimum; on the demo model's features "adaptive" needs 2× fewer evaluations
    than the fixed π_k(1 − π_k) for word identity (127 classes) and 1.5× fewer for UPOS (the
    trials are in bench/RESULTS.md). ``chunk``: rows per block of an evaluation (None: a
    cache-sized block on CPU, all rows on GPU). ``basis``: the features' ``GramBasis`` for the
    preconditioner, when the caller has it (computed here otherwise). ``problems``: fit only
    these (indices); the others keep ``init`` (or the starting point).
    """
    P, n, d = X.shape
    K = int(n_classes)
    lam_t = _as_lam(lam, P, X.device).to(X.dtype)
    # Two classes: softmax weights w₀, w₁ only matter through w = w₁ − w₀, and at the optimum
    # w₀ = −w₁, so λ/2(‖w₀‖² + ‖w₁‖²) = λ/4‖w‖². Doubling λ makes the fit scikit-learn's binary
    # logistic regression (one weight vector, penalty λ/2‖w‖²) with the same λ.
    lam_fit = lam_t * 2 if K == 2 else lam_t
    if init is not None:
        x0 = torch.cat([init.W.transpose(1, 2).reshape(P, K * d), init.b], dim=1).to(X.dtype)
    else:
        # W = 0, bias at the log class frequencies (the λ → ∞ solution)
        counts = torch.bincount(y, minlength=K).to(X.dtype) + 0.5
        b0 = torch.log(counts / counts.sum())
        x0 = torch.cat([torch.zeros(P, d * K, dtype=X.dtype, device=X.device), b0.expand(P, K)], dim=1)
    if n == 0:
        x = x0
        it = 0
    else:
        objective = _LogisticObjective(X, y, K, lam_fit, precondition, chunk, basis)
        with num_threads(auto_threads(P * n * d * K, X.device, threads)):
            inverse_hessian = objective.inverse_hessian if objective.preconditioned else None
            x, it, _ = lbfgs(objective, x0, precondition=inverse_hessian, max_iter=max_iter, tol=tol, history=history,
                             problems=problems)
    return LogisticProbe(x[:, : K * d].reshape(P, K, d).transpose(1, 2).contiguous(), x[:, K * d:].contiguous(),
                         lam_t, it)


@overload
def select_logistic(X_tr: Tensor, y_tr: Tensor, X_va: Tensor, y_va: Tensor, n_classes: int,
                    lambdas: tuple[float, ...] = ..., init: LogisticProbe | None = ..., early_stop: float | None = ...,
                    progress: Callable[[int], None] | None = ..., *, inits: Sequence[LogisticProbe] | None = None,
                    path: list[LogisticProbe] | None = None, X_te: None = None, y_te: None = None,
                    **kwargs: Any) -> tuple[LogisticProbe, np.ndarray]: ...


@overload
def select_logistic(X_tr: Tensor, y_tr: Tensor, X_va: Tensor, y_va: Tensor, n_classes: int,
                    lambdas: tuple[float, ...] = ..., init: LogisticProbe | None = ..., early_stop: float | None = ...,
                    progress: Callable[[int], None] | None = ..., *, inits: Sequence[LogisticProbe] | None = None,
                    path: list[LogisticProbe] | None = None, X_te: Tensor, y_te: Tensor,
                    **kwargs: Any) -> tuple[LogisticProbe, np.ndarray, np.ndarray]: ...


def select_logistic(X_tr: Tensor, y_tr: Tensor, X_va: Tensor, y_va: Tensor, n_classes: int,
                    lambdas: tuple[float, ...] = DEFAULT_LAMBDAS, init: LogisticProbe | None = None,
                    early_stop: float | None = 1e-3, progress: Callable[[int], None] | None = None, *,
                    inits: Sequence[LogisticProbe] | None = None, path: list[LogisticProbe] | None = None,
                    X_te: Tensor | None = None, y_te: Tensor | None = None,
                    **kwargs: Any) -> tuple[LogisticProbe, np.ndarray] | tuple[LogisticProbe, np.ndarray, np.ndarray]:
    """Fit the λ path (strong → weak, warm-started; ``init`` starts the first) and keep the
    best λ per problem on the validation rows. Returns the selected probes and the validation
    accuracies [P, G] (NaN for λ not fitted); with ``X_te`` [P, m, d] and ``y_te`` [m] also the
    accuracy on those rows of every λ's probe, [P, G] (a third element; NaN for the λ not fitted
    because the path stopped early).

    early_stop: the path stops when a weaker λ raises no problem's validation accuracy by more
    than this (None: fit the whole grid). Every problem stays on the path while any improves: a
    layer whose accuracy has plateaued can still rise again at a weaker λ (a control task's
    probe starts memorising word types there), and stopping it early moved the demo's
    selectivity by 0.16 (#14). ``progress(n)``: called after each λ with 1, and with the number
    of λ skipped when the path stops early.

    ``inits``: a starting point per λ of the path (strong → weak; e.g. the path of a fit on an
    overlapping sample, ``path`` of an earlier call): the g-th λ starts from ``inits[g]`` instead
    of the previous λ's solution, where given. ``path``: a list that receives each fitted λ's
    probe, in path order. Either way each λ is solved to ``tol``: only the iterations change."""
    lambdas = tuple(sorted(lambdas, reverse=True))
    P = X_tr.shape[0]
    best: LogisticProbe | None = None
    best_key = torch.full((P,), -math.inf, device=X_tr.device, dtype=torch.float64)
    val_acc = np.full((P, len(lambdas)), np.nan)
    test_acc = np.full((P, len(lambdas)), np.nan) if X_te is not None else None
    probe = init
    for g, lam in enumerate(lambdas):
        if g >= 2 and early_stop is not None and np.all(val_acc[:, g - 1] <= val_acc[:, g - 2] + early_stop):
            if progress is not None:
                progress(len(lambdas) - g)
            break
        start = inits[g] if inits is not None and g < len(inits) else probe
        probe = fit_logistic(X_tr, y_tr, n_classes, lam, init=start, **kwargs)
        if path is not None:
            path.append(probe)
        if progress is not None:
            progress(1)
        if test_acc is not None:
            assert X_te is not None and y_te is not None
            test_acc[:, g] = accuracy(probe, X_te, y_te).cpu().numpy()
        logits = probe.logits(X_va)
        acc = (logits.argmax(-1) == y_va).double().mean(dim=1) if len(y_va) else torch.zeros(P, dtype=torch.float64, device=X_tr.device)
        nll = F.cross_entropy(logits.reshape(-1, n_classes), y_va.repeat(P), reduction="none"
                              ).reshape(P, -1).double().mean(dim=1) if len(y_va) else torch.zeros_like(acc)
        key = acc - 1e-6 * nll  # accuracy first, log-loss breaks ties
        val_acc[:, g] = acc.cpu().numpy()
        better = key > best_key
        if best is None:
            best = LogisticProbe(probe.W.clone(), probe.b.clone(), probe.lam.clone(), probe.n_iter)
        else:
            best.W[better] = probe.W[better]
            best.b[better] = probe.b[better]
            best.lam[better] = probe.lam[better]
        best_key = torch.where(better, key, best_key)
    assert best is not None
    return (best, val_acc) if test_acc is None else (best, val_acc, test_acc)


def accuracy(probe: LogisticProbe, X: Tensor, y: Tensor) -> Tensor:
    """[P] float64: the share of the rows X [P, m, d] whose prediction is y [m] (NaN for m = 0)."""
    return (probe.predict(X) == y).double().mean(dim=1)


def selected_scores(lambdas: tuple[float, ...], scores: np.ndarray, lam: Tensor | np.ndarray) -> np.ndarray:
    """[P]: each problem's score (``scores`` [P, G] over ``lambdas``, as ``select_logistic`` /
    ``select_ridge`` return them) at the λ it selected (``lam`` [P])."""
    grid = np.asarray(sorted(lambdas, reverse=True), dtype=np.float64)
    lam = np.asarray(lam.cpu() if isinstance(lam, Tensor) else lam, dtype=np.float64)
    g = np.abs(np.log(grid)[None, :] - np.log(lam)[:, None]).argmin(axis=1)  # the nearest grid λ (float32 λ)
    return scores[np.arange(len(lam)), g]


# ----------------------------------------------------------------------------- ridge
@dataclass
class RidgeProbe:
    w: Tensor  # [P, d]
    b: Tensor  # [P]
    lam: Tensor  # [P]

    def predict(self, X: Tensor) -> Tensor:
        """[P, m] for X [P, m, d]."""
        return torch.bmm(X, self.w[:, :, None])[..., 0] + self.b[:, None]

    def select(self, index: Tensor | list[int]) -> RidgeProbe:
        return RidgeProbe(self.w[index], self.b[index], self.lam[index])


class RidgePath:
    """Ridge for P problems and any λ from one eigendecomposition per problem."""

    def __init__(self, X: Tensor, y: Tensor):
        Xd = X.double()
        yd = y.double()
        n = X.shape[1]
        x_mean = Xd.mean(dim=1, keepdim=True)  # [P, 1, d]
        y_mean = yd.mean()
        Xc = Xd - x_mean
        gram = Xc.transpose(1, 2) @ Xc / n  # [P, d, d]
        xty = (Xc.transpose(1, 2) @ (yd - y_mean)[None, :, None])[..., 0] / n  # [P, d]
        self._setup(gram, xty, x_mean, y_mean, X.dtype)

    @classmethod
    def from_moments(cls, gram: Tensor, xty: Tensor, x_mean: Tensor, y_mean: Tensor,
                     dtype: torch.dtype = torch.float32) -> RidgePath:
        """From centred moments: gram [P, d, d] = XcᵀXc/n, xty [P, d] = Xcᵀ(y − ȳ)/n,
        x_mean [P, 1, d]. (A prefix of the features is a leading block of these.)"""
        path = cls.__new__(cls)
        path._setup(gram.double(), xty.double(), x_mean.double(), y_mean.double(), dtype)
        return path

    @classmethod
    def from_basis(cls, basis: GramBasis, X: Tensor, y: Tensor) -> RidgePath:
        """From the centred Gram's eigendecomposition of X (``GramBasis.of(X)``) and X itself
        (read one problem at a time, for Xcᵀ(y − ȳ)/n)."""
        yd = y.double()
        y_mean = yd.mean()
        yc = yd - y_mean
        xty = torch.stack([(X[p].double() - basis.mean[p]).T @ yc for p in range(X.shape[0])]) / X.shape[1]
        path = cls.__new__(cls)
        path._from_eigen(basis.evals, basis.evecs, xty, basis.mean, y_mean, X.dtype)
        return path

    def _setup(self, gram: Tensor, xty: Tensor, x_mean: Tensor, y_mean: Tensor, dtype: torch.dtype) -> None:
        evals, evecs = torch.linalg.eigh(gram)
        self._from_eigen(evals.clamp_min(0.0), evecs, xty, x_mean, y_mean, dtype)

    def _from_eigen(self, evals: Tensor, evecs: Tensor, xty: Tensor, x_mean: Tensor, y_mean: Tensor,
                    dtype: torch.dtype) -> None:
        self.x_mean, self.y_mean, self.dtype = x_mean, y_mean, dtype
        self.evals, self.evecs = evals, evecs
        self.rot = (self.evecs.transpose(1, 2) @ xty[..., None])[..., 0]  # [P, d]

    def probe(self, lam: float | Tensor) -> RidgeProbe:
        P = self.rot.shape[0]
        lam_t = _as_lam(lam, P, self.rot.device).double()
        coef = self.rot / (self.evals + lam_t[:, None])
        w = (self.evecs @ coef[..., None])[..., 0]
        b = self.y_mean - (self.x_mean[:, 0, :] * w).sum(dim=1)
        return RidgeProbe(w.to(self.dtype), b.to(self.dtype), lam_t.to(self.dtype))


def fit_ridge(X: Tensor, y: Tensor, lam: float | Tensor) -> RidgeProbe:
    return RidgePath(X, y).probe(lam)


def r2_score(y: Tensor, pred: Tensor) -> Tensor:
    """R² per problem: pred [P, m], y [m]."""
    yd = y.double()
    ss_tot = ((yd - yd.mean()) ** 2).sum()
    ss_res = ((pred.double() - yd[None, :]) ** 2).sum(dim=1)
    return 1.0 - ss_res / ss_tot.clamp_min(1e-300)


@overload
def select_ridge(X_tr: Tensor, y_tr: Tensor, X_va: Tensor, y_va: Tensor, lambdas: tuple[float, ...] = ...,
                 path: RidgePath | None = ..., threads: int | None = ..., *, X_te: None = None,
                 y_te: None = None) -> tuple[RidgeProbe, np.ndarray]: ...


@overload
def select_ridge(X_tr: Tensor, y_tr: Tensor, X_va: Tensor, y_va: Tensor, lambdas: tuple[float, ...] = ...,
                 path: RidgePath | None = ..., threads: int | None = ..., *, X_te: Tensor,
                 y_te: Tensor) -> tuple[RidgeProbe, np.ndarray, np.ndarray]: ...


def select_ridge(X_tr: Tensor, y_tr: Tensor, X_va: Tensor, y_va: Tensor,
                 lambdas: tuple[float, ...] = DEFAULT_RIDGE_LAMBDAS, path: RidgePath | None = None,
                 threads: int | None = None, *, X_te: Tensor | None = None, y_te: Tensor | None = None
                 ) -> tuple[RidgeProbe, np.ndarray] | tuple[RidgeProbe, np.ndarray, np.ndarray]:
    """Ridge for each λ of the grid; the best per problem by validation R². ``path``: the
    training moments already decomposed (X_tr is then not read). Returns the selected probes and
    the validation R² [P, G] (λ strong → weak); with ``X_te`` [P, m, d] and ``y_te`` [m] also the
    R² on those rows of every λ's probe, [P, G] (a third element)."""
    P, n, d = X_tr.shape
    with num_threads(auto_threads(P * n * d * d / 8, X_tr.device, threads)):
        probe, val, test = _select_ridge(X_tr, y_tr, X_va, y_va, lambdas, path, X_te, y_te)
    return (probe, val) if test is None else (probe, val, test)


def _r2_or_zero(y: Tensor, pred: Tensor) -> Tensor:
    """R² per problem, 0 where fewer than 2 rows leave it undefined."""
    return r2_score(y, pred) if len(y) > 1 else torch.zeros(pred.shape[0], dtype=torch.float64)


def _select_ridge(X_tr: Tensor, y_tr: Tensor, X_va: Tensor, y_va: Tensor, lambdas: tuple[float, ...],
                  path: RidgePath | None, X_te: Tensor | None, y_te: Tensor | None
                  ) -> tuple[RidgeProbe, np.ndarray, np.ndarray | None]:
    lambdas = tuple(sorted(lambdas, reverse=True))
    path = path or RidgePath(X_tr, y_tr)
    P = X_va.shape[0]
    val = np.zeros((P, len(lambdas)))
    test = np.zeros((P, len(lambdas))) if X_te is not None else None
    best_lam = torch.full((P,), lambdas[0], dtype=torch.float64, device=X_tr.device)
    best_score = torch.full((P,), -math.inf, dtype=torch.float64, device=X_tr.device)
    for g, lam in enumerate(lambdas):
        probe = path.probe(lam)
        score = _r2_or_zero(y_va, probe.predict(X_va))
        val[:, g] = score.cpu().numpy()
        if test is not None:
            assert X_te is not None and y_te is not None
            test[:, g] = _r2_or_zero(y_te, probe.predict(X_te)).cpu().numpy()
        better = score > best_score
        best_lam = torch.where(better, torch.full_like(best_lam, lam), best_lam)
        best_score = torch.where(better, score, best_score)
    return path.probe(best_lam), val, test
