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
score (accuracy, ties broken by validation log-loss; R² for ridge).
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from dataclasses import dataclass

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
    parallelism costs more than it gains there); else torch's setting, reduced to the cores the
    1-minute load average leaves idle (on a shared machine oversubscribed OpenMP threads spin at
    their barriers: measured 4× slower on 2 busy cores)."""
    if device.type != "cpu":
        return None
    if threads is not None:
        return threads
    if work < SMALL_WORK:
        return 1
    try:
        idle = (os.cpu_count() or 1) - os.getloadavg()[0]
    except (AttributeError, OSError):  # pragma: no cover - no load average on this platform
        return None
    return max(1, min(torch.get_num_threads(), int(idle + 0.5)))


# ----------------------------------------------------------------------------- standardising
@dataclass
class Standardizer:
    """Per-problem, per-feature mean and standard deviation (from training rows)."""

    mean: Tensor  # [P, 1, d]
    std: Tensor  # [P, 1, d]

    @classmethod
    def fit(cls, X: Tensor, eps: float = 1e-6) -> "Standardizer":
        mean = X.mean(dim=1, keepdim=True)
        std = X.std(dim=1, keepdim=True, unbiased=False).clamp_min(eps)
        return cls(mean, std)

    def __call__(self, X: Tensor) -> Tensor:
        return (X - self.mean) / self.std

    def apply_(self, X: Tensor) -> Tensor:
        """In place."""
        return X.sub_(self.mean).div_(self.std)


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

    def select(self, index: Tensor | list[int]) -> "LogisticProbe":
        return LogisticProbe(self.W[index], self.b[index], self.lam[index], self.n_iter)


def _as_lam(lam: float | Tensor | np.ndarray | list[float], P: int, device: torch.device) -> Tensor:
    t = torch.as_tensor(lam, dtype=torch.float32, device=device)
    return t.expand(P).clone() if t.dim() == 0 else t.reshape(P)


class _LogisticObjective:
    """Mean cross-entropy + λ/2‖W‖² and its gradient for a subset of the P problems.

    Parameters are flat per problem: ``x [p, K·d + K]`` = Wᵀ [K, d] then b [K]. Logits are
    computed class-major, ``[p, K, c] = Wᵀ @ Xᵀ`` for blocks of c rows (Xᵀ a view, no copy): the
    softmax then runs along a long contiguous axis, and a block's logits stay in cache through
    its passes (on the demo model's word task: 1.75× faster per evaluation than all rows at
    once). With ``precondition="adaptive"`` each evaluation also records the class curvature
    mean_i p_ik(1 − p_ik) of its point, which ``precond`` then uses."""

    def __init__(self, X: Tensor, y: Tensor, n_classes: int, lam: Tensor, precondition: str | None = None,
                 chunk: int | None = None):
        self.X, self.K, self.lam, self.chunk = X, n_classes, lam, chunk
        self._buf: Tensor | None = None
        self.P, self.n, self.d = X.shape
        self.y = y.reshape(1, 1, -1)
        self._key: tuple[int, ...] | None = None
        self._Xa = X
        self._neg = torch.full((1, 1, self.n), -1.0, dtype=X.dtype, device=X.device)
        self.precondition = precondition
        if precondition:
            Xd = X.double()
            gram = Xd.transpose(1, 2) @ Xd / self.n  # [P, d, d]
            e, V = torch.linalg.eigh(gram)
            self._e, self._V = e.clamp_min(0.0).to(X.dtype), V.to(X.dtype)
            self._counts = torch.bincount(y, minlength=n_classes).to(X.dtype)
            pi = self._counts / max(self.n, 1)
            if precondition == "pi":
                c = (pi * (1 - pi)).clamp_min(1.0 / max(self.n, 1))
            elif precondition == "half":
                c = torch.full_like(pi, 0.5)
            elif precondition == "adaptive":
                c = (pi * (1 - pi)).clamp_min(1.0 / max(self.n, 1))
            else:
                raise ValueError(f"precondition must be 'pi', 'half', 'adaptive' or None, got {precondition!r}")
            self._c = c.expand(self.P, n_classes).clone()  # [P, K]

    def precond(self, q: Tensor, idx: Tensor) -> Tensor:
        """M·q with M ≈ inverse Hessian: per class k, (c_k·XᵀX/n + λ)⁻¹ on the weights (in the
        eigenbasis of XᵀX/n), 1/c_k on the bias."""
        p, d, K = len(idx), self.d, self.K
        full = p == self.P
        V = self._V if full else self._V[idx]
        e = self._e if full else self._e[idx]
        lam = self.lam[idx]
        WT = q[:, : K * d].reshape(p, K, d)
        Z = torch.bmm(WT, V)  # [p, K, d] in the eigenbasis
        c = self._c[idx]  # [p, K]
        Z = Z / (c[:, :, None] * e[:, None, :] + lam[:, None, None])
        W2 = torch.bmm(Z, V.transpose(1, 2))
        b2 = q[:, K * d:] / c
        return torch.cat([W2.reshape(p, K * d), b2], dim=1)

    def _subset(self, idx: Tensor) -> Tensor:
        if len(idx) == self.P:
            return self.X
        key = tuple(idx.tolist())
        if key != self._key:  # the active set shrank: copy its features once
            self._key, self._Xa = key, self.X[idx]
        return self._Xa

    def batch(self, active: Tensor) -> Tensor:
        """Which problems to evaluate: the active ones (their features are copied once each time
        the active set shrinks, which costs less than one evaluation)."""
        if bool(active.all()):
            return torch.arange(self.P, device=active.device)
        return active.nonzero()[:, 0]

    def __call__(self, x: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
        p, n, d, K = len(idx), self.n, self.d, self.K
        X = self._subset(idx)
        lam = self.lam[idx]
        WT = x[:, : K * d].reshape(p, K, d)
        b = x[:, K * d:, None]  # [p, K, 1]
        c = self._chunk_rows(p)
        buf = self._buffer(p, c)
        f = x.new_zeros(p)
        gW = x.new_zeros(p, K, d)
        gb = x.new_zeros(p, K, 1)
        adaptive = self.precondition == "adaptive"
        sq = x.new_zeros(p, K) if adaptive else None
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
            L.div_(z)
            if sq is not None:
                sq.add_(torch.linalg.vector_norm(L, dim=2).square_())
            L.scatter_add_(1, y, self._neg[:, :, :w].expand(p, 1, w))  # softmax − one-hot
            gW.baddbmm_(L, Xc)
            gb.add_(L.sum(dim=2, keepdim=True))
        if sq is not None:  # curvature of this point: mean p(1 − p) per class
            self._c[idx] = ((gb[..., 0] + self._counts) - sq).div_(n).clamp_min_(1.0 / n)
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
        if self._buf is None or self._buf.shape[1] != c or self._buf.shape[0] < p:
            self._buf = self.X.new_empty(max(p, self.P), self.K, c)
        return self._buf[:p]


def lbfgs(fg, x: Tensor, *, max_iter: int = 100, tol: float = 1e-4, history: int = 20,
          max_halvings: int = 30) -> tuple[Tensor, int, int]:
    """Batched L-BFGS: P independent problems, each with its own curvature pairs and its own
    backtracking line search (Armijo, or approximate Wolfe within rounding noise); problems
    leave the batch as they converge.

    fg(x [p, D], idx [p]) → (f [p], g [p, D]) for the problems ``idx``. Stops a problem when
    its largest gradient entry is ≤ tol (scikit-learn's lbfgs criterion), or when its line
    search fails twice in a row (the second time from a fresh memory: no step of the
    preconditioned gradient direction improves it). Returns (x, iterations, evaluations)."""
    x = x.clone()
    P, D = x.shape
    idx = torch.arange(P, device=x.device)
    pre = fg.precond if getattr(fg, "precondition", None) else None
    f, g = fg(x, idx)
    evals = 1
    m = history
    S = x.new_zeros(P, m, D)
    Y = x.new_zeros(P, m, D)
    rho = x.new_zeros(P, m)
    fails = torch.zeros(P, dtype=torch.long, device=x.device)  # consecutive failed line searches
    pos = 0
    active = g.abs().amax(dim=1) > tol
    it = 0
    for it in range(1, max_iter + 1):
        if not bool(active.any()):
            it -= 1
            break
        a = fg.batch(active) if hasattr(fg, "batch") else active.nonzero()[:, 0]
        full = len(a) == P
        if full:
            ga, xa, fa, Sa, Ya, ra = g, x, f, S, Y, rho
        else:
            ga, xa, fa, Sa, Ya, ra = g[a], x[a], f[a], S[a], Y[a], rho[a]
        live = active[a]  # problems of the batch that still move
        # two-loop recursion: direction = −H·g
        order = [(pos - 1 - j) % m for j in range(m)]  # newest first
        q = ga.clone()
        alpha = x.new_zeros(len(a), m)
        for i in order:
            alpha[:, i] = ra[:, i] * torch.linalg.vecdot(Sa[:, i], q)
            q.addcmul_(Ya[:, i], alpha[:, i, None], value=-1.0)
        newest = order[0]
        sy = (Sa[:, newest] * Ya[:, newest]).sum(dim=1)
        yy = (Ya[:, newest] * Ya[:, newest]).sum(dim=1)
        first_step = torch.clamp(1.0 / ga.abs().sum(dim=1).clamp_min(1e-12), max=1.0)
        if pre is not None:
            My = pre(Ya[:, newest], a)
            yMy = (Ya[:, newest] * My).sum(dim=1)
            gamma = torch.where((yMy > 0) & (sy > 0), sy / yMy.clamp_min(1e-30), torch.ones_like(sy))
            r = gamma[:, None] * pre(q, a)
        else:
            gamma = torch.where((yy > 0) & (sy > 0), sy / yy.clamp_min(1e-30), first_step)
            r = gamma[:, None] * q
        for i in reversed(order):
            beta = ra[:, i] * torch.linalg.vecdot(Ya[:, i], r)
            r.addcmul_(Sa[:, i], (alpha[:, i] - beta)[:, None])
        d = r.mul_(-live.to(r.dtype)[:, None])  # −H·g, zero for problems already done
        gd = (ga * d).sum(dim=1)
        bad = (gd >= 0) & live
        if bool(bad.any()):  # not a descent direction: fall back to steepest descent
            d = torch.where(bad[:, None], -ga * first_step[:, None], d)
            gd = (ga * d).sum(dim=1)
        t = torch.ones(len(a), dtype=x.dtype, device=x.device)
        # Accept a step by Armijo, or by Hager & Zhang's approximate Wolfe conditions (the slope
        # has risen to σ·φ'(0) but not past −φ'(0), and f has not grown beyond its rounding
        # noise): near the optimum of a flat objective the decrease Armijo asks for is below
        # float32 resolution, while the gradients are still accurate (≈1e-7 here).
        noise = 16 * torch.finfo(x.dtype).eps * fa.abs().clamp_min(1.0)
        ok = torch.zeros_like(live)
        for _ in range(max_halvings):
            xn = xa + t[:, None] * d
            fn, gn = fg(xn, a)
            evals += 1
            gnd = (gn * d).sum(dim=1)
            armijo = fn <= fa + 1e-4 * t * gd
            wolfe = (fn <= fa + noise) & (gnd >= 0.9 * gd) & (gnd <= -gd)
            ok = (armijo | wolfe) & torch.isfinite(fn) & torch.isfinite(gn).all(dim=1)
            if bool((ok | ~live).all()):
                break
            t = torch.where(ok, t, t * 0.5)
        # A failed line search leaves the problem where it was and forgets its curvature pairs
        # (they made a bad direction); failing again from a fresh start means it cannot improve.
        failed = live & ~ok
        if bool(failed.any()):
            xn = torch.where(failed[:, None], xa, xn)
            fn = torch.where(failed, fa, fn)
            gn = torch.where(failed[:, None], ga, gn)
        s = xn - xa
        yv = gn - ga
        syn = (s * yv).sum(dim=1)
        keep = (syn > 1e-10 * (yv * yv).sum(dim=1).clamp_min(1e-30)) & live & ~failed
        Sa[:, pos] = torch.where(keep[:, None], s, Sa[:, pos])
        Ya[:, pos] = torch.where(keep[:, None], yv, Ya[:, pos])
        ra[:, pos] = torch.where(keep, 1.0 / syn.clamp_min(1e-30), torch.zeros_like(syn))
        if bool(failed.any()):
            Sa[failed] = 0.0
            Ya[failed] = 0.0
            ra[failed] = 0.0
        pos = (pos + 1) % m
        fa_fail = fails[a] if not full else fails
        fa_fail = torch.where(failed, fa_fail + 1, torch.zeros_like(fa_fail))
        converged = gn.abs().amax(dim=1) <= tol
        stalled = fa_fail >= 2
        still = live & ~(converged | stalled)
        if full:
            x, f, g = xn, fn, gn
            fails = fa_fail
            active = still
        else:
            S[a], Y[a], rho[a] = Sa, Ya, ra
            x[a], f[a], g[a] = xn, fn, gn
            fails[a] = fa_fail
            active[a] = still
    return x, it, evals


def fit_logistic(X: Tensor, y: Tensor, n_classes: int, lam: float | Tensor, *,
                 init: LogisticProbe | None = None, max_iter: int = 100, tol: float = 1e-4,
                 history: int = 20, threads: int | None = None, precondition: str | None = "adaptive",
                 chunk: int | None = None) -> LogisticProbe:
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
    Hessian's class blocks with the feature weighting averaged out, re-read at every point;
    "pi": π_k(1 − π_k) from the class frequencies (its value at the start); "half": ½ (Böhning's
    bound); None: the usual scaled identity. All reach the same optimum; on the demo model's
    features "adaptive" needs 2× fewer evaluations than "pi" for word identity (127 classes) and
    1.5× fewer for UPOS. ``chunk``: rows per block of an evaluation (None: a cache-sized block
    on CPU, all rows on GPU).
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
        with num_threads(auto_threads(P * n * d * K, X.device, threads)):
            x, it, _ = lbfgs(_LogisticObjective(X, y, K, lam_fit, precondition, chunk), x0, max_iter=max_iter, tol=tol,
                             history=history)
    return LogisticProbe(x[:, : K * d].reshape(P, K, d).transpose(1, 2).contiguous(), x[:, K * d:].contiguous(),
                         lam_t, it)


def select_logistic(X_tr: Tensor, y_tr: Tensor, X_va: Tensor, y_va: Tensor, n_classes: int,
                    lambdas: tuple[float, ...] = DEFAULT_LAMBDAS, init: LogisticProbe | None = None,
                    early_stop: float | None = 1e-3, **kwargs) -> tuple[LogisticProbe, np.ndarray]:
    """Fit the λ path (strong → weak, warm-started; ``init`` starts the first) and keep the
    best λ per problem on the validation rows. Returns the selected probes and the validation
    accuracies [P, G] (NaN for λ not fitted).

    early_stop: the path stops when a weaker λ raises no problem's validation accuracy by more
    than this (None: fit the whole grid)."""
    lambdas = tuple(sorted(lambdas, reverse=True))
    P = X_tr.shape[0]
    best: LogisticProbe | None = None
    best_key = torch.full((P,), -math.inf, device=X_tr.device, dtype=torch.float64)
    val_acc = np.full((P, len(lambdas)), np.nan)
    probe = init
    for g, lam in enumerate(lambdas):
        if g >= 2 and early_stop is not None and np.all(val_acc[:, g - 1] <= val_acc[:, g - 2] + early_stop):
            break
        probe = fit_logistic(X_tr, y_tr, n_classes, lam, init=probe, **kwargs)
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
    return best, val_acc


# ----------------------------------------------------------------------------- ridge
@dataclass
class RidgeProbe:
    w: Tensor  # [P, d]
    b: Tensor  # [P]
    lam: Tensor  # [P]

    def predict(self, X: Tensor) -> Tensor:
        """[P, m] for X [P, m, d]."""
        return torch.bmm(X, self.w[:, :, None])[..., 0] + self.b[:, None]

    def select(self, index: Tensor | list[int]) -> "RidgeProbe":
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
                     dtype: torch.dtype = torch.float32) -> "RidgePath":
        """From centred moments: gram [P, d, d] = XcᵀXc/n, xty [P, d] = Xcᵀ(y − ȳ)/n,
        x_mean [P, 1, d]. (A prefix of the features is a leading block of these.)"""
        path = cls.__new__(cls)
        path._setup(gram.double(), xty.double(), x_mean.double(), y_mean.double(), dtype)
        return path

    def _setup(self, gram: Tensor, xty: Tensor, x_mean: Tensor, y_mean: Tensor, dtype: torch.dtype) -> None:
        self.x_mean, self.y_mean, self.dtype = x_mean, y_mean, dtype
        self.evals, self.evecs = torch.linalg.eigh(gram)
        self.evals = self.evals.clamp_min(0.0)
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


def select_ridge(X_tr: Tensor, y_tr: Tensor, X_va: Tensor, y_va: Tensor,
                 lambdas: tuple[float, ...] = DEFAULT_RIDGE_LAMBDAS, path: RidgePath | None = None,
                 threads: int | None = None) -> tuple[RidgeProbe, np.ndarray]:
    """Ridge for each λ of the grid; the best per problem by validation R². ``path``: the
    training moments already decomposed (X_tr is then not read)."""
    P, n, d = X_tr.shape
    with num_threads(auto_threads(P * n * d * d / 8, X_tr.device, threads)):
        return _select_ridge(X_tr, y_tr, X_va, y_va, lambdas, path)


def _select_ridge(X_tr: Tensor, y_tr: Tensor, X_va: Tensor, y_va: Tensor, lambdas: tuple[float, ...],
                  path: RidgePath | None) -> tuple[RidgeProbe, np.ndarray]:
    lambdas = tuple(sorted(lambdas, reverse=True))
    path = path or RidgePath(X_tr, y_tr)
    P = X_va.shape[0]
    val = np.zeros((P, len(lambdas)))
    best_lam = torch.full((P,), lambdas[0], dtype=torch.float64, device=X_tr.device)
    best_score = torch.full((P,), -math.inf, dtype=torch.float64, device=X_tr.device)
    for g, lam in enumerate(lambdas):
        probe = path.probe(lam)
        score = r2_score(y_va, probe.predict(X_va)) if len(y_va) > 1 else torch.zeros(P, dtype=torch.float64)
        val[:, g] = score.cpu().numpy()
        better = score > best_score
        best_lam = torch.where(better, torch.full_like(best_lam, lam), best_lam)
        best_score = torch.where(better, score, best_score)
    return path.probe(best_lam), val
