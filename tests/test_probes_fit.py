"""Probe fitting in torch agrees with scikit-learn (LogisticRegression, Ridge) on the same data."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression, Ridge

from probes.fit import RidgePath, Standardizer, fit_logistic, fit_ridge, lbfgs, select_logistic, select_ridge


def _layers(n: int, d: int, K: int, P: int, seed: int = 0):
    """P layers of features for the same labels, with increasing signal."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, size=n)
    means = rng.normal(size=(K, d))
    X = np.stack([0.25 * (p + 1) * means[y] + rng.normal(size=(n, d)) * (1 + rng.random(d)) for p in range(P)])
    return X.astype(np.float32), y


def test_logistic_matches_sklearn_accuracy_on_every_layer():
    P, d, K, lam = 4, 24, 5, 1e-2
    X, y = _layers(3000, d, K, P)
    Xt = torch.from_numpy(X)
    std = Standardizer.fit(Xt[:, :2000])
    Xs = std(Xt)
    tr, te = slice(0, 2000), slice(2000, None)
    ours = fit_logistic(Xs[:, tr], torch.from_numpy(y[tr]), K, lam)
    pred = ours.predict(Xs[:, te]).numpy()
    proba = ours.log_probs(Xs[:, te]).exp().numpy()
    for p in range(P):
        sk = LogisticRegression(C=1.0 / (lam * 2000), max_iter=1000, tol=1e-6).fit(Xs[p, tr].numpy(), y[tr])
        acc_sk = sk.score(Xs[p, te].numpy(), y[te])
        acc_ours = float((pred[p] == y[te]).mean())
        assert abs(acc_sk - acc_ours) <= 0.005, (p, acc_sk, acc_ours)
        assert np.abs(sk.predict_proba(Xs[p, te].numpy()) - proba[p]).max() < 0.02
    assert 0 < ours.n_iter <= 100


def test_batched_problems_are_independent():
    X, y = _layers(800, 10, 3, 3, seed=1)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    lam = torch.tensor([1e-1, 1e-2, 1e-3])
    together = fit_logistic(Xt, yt, 3, lam, tol=1e-6, max_iter=500)
    for p in range(3):
        alone = fit_logistic(Xt[p:p + 1], yt, 3, float(lam[p]), tol=1e-6, max_iter=500)
        assert torch.allclose(together.W[p], alone.W[0], atol=2e-3)
        assert torch.allclose(together.b[p], alone.b[0], atol=2e-3)


def test_lbfgs_solves_a_batch_of_quadratics():
    # f_p(x) = ½ (x − c_p)ᵀ A_p (x − c_p): each problem's minimiser is c_p
    torch.manual_seed(0)
    P, D = 5, 8
    Q = torch.linalg.qr(torch.randn(P, D, D))[0]
    A = Q @ torch.diag_embed(torch.linspace(0.1, 10.0, D).expand(P, D)) @ Q.transpose(1, 2)
    c = torch.randn(P, D)

    def fg(x, idx):
        r = x - c[idx]
        g = (A[idx] @ r[..., None])[..., 0]
        return 0.5 * (r * g).sum(1), g

    x, iters, _ = lbfgs(fg, torch.zeros(P, D), tol=1e-6, max_iter=200)
    assert torch.allclose(x, c, atol=1e-4) and iters < 200
    # a preconditioner (any callable M·q ≈ H⁻¹q) is passed explicitly; the exact inverse Hessian
    # makes the first step the Newton step
    A_inv = torch.linalg.inv(A)
    x, iters, _ = lbfgs(fg, torch.zeros(P, D), precondition=lambda q, idx: (A_inv[idx] @ q[..., None])[..., 0],
                        tol=1e-6, max_iter=200)
    assert torch.allclose(x, c, atol=1e-4) and iters <= 2


def test_curvature_memory_compacts_in_place():
    from probes.fit import _CurvatureMemory

    torch.manual_seed(0)
    mem = _CurvatureMemory(torch.randn(5, 3, 4), torch.randn(5, 3, 4), torch.randn(5, 3), slot=2)
    keep = torch.tensor([1, 3, 4])
    want = (mem.steps[keep].clone(), mem.grad_changes[keep].clone(), mem.inv_sy[keep].clone())
    ptr = mem.steps.data_ptr()
    small = mem.compact(keep)
    torch.testing.assert_close(small.steps, want[0], rtol=0, atol=0)
    torch.testing.assert_close(small.grad_changes, want[1], rtol=0, atol=0)
    torch.testing.assert_close(small.inv_sy, want[2], rtol=0, atol=0)
    assert small.steps.data_ptr() == ptr and small.steps.is_contiguous() and small.slot == 2


def test_lbfgs_problems_leaving_the_batch_end_where_they_would_alone():
    """Problems converge at different iterations (condition numbers 2 to 1e4), so the active
    set shrinks several times; each ends where it ends when solved alone."""
    torch.manual_seed(1)
    P, D = 6, 10
    Q = torch.linalg.qr(torch.randn(P, D, D))[0]
    spread = torch.stack([torch.logspace(0, k, D) for k in (0.3, 1, 2, 3, 4, 0.5)])
    A = Q @ torch.diag_embed(spread) @ Q.transpose(1, 2)
    c = torch.randn(P, D)

    def fg(x, idx):
        r = x - c[idx]
        g = (A[idx] @ r[..., None])[..., 0]
        return 0.5 * (r * g).sum(1), g

    together, _, _ = lbfgs(fg, torch.zeros(P, D), tol=1e-6, max_iter=500, history=5)
    for p in range(P):
        alone, _, _ = lbfgs(lambda x, idx: fg(x, idx + p), torch.zeros(1, D), tol=1e-6, max_iter=500, history=5)
        torch.testing.assert_close(together[p], alone[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(together, c, atol=1e-3, rtol=0)


def test_ridge_matches_sklearn():
    X, _ = _layers(600, 12, 2, 3, seed=2)
    rng = np.random.default_rng(3)
    y = X[2] @ rng.normal(size=12) + rng.normal(size=600)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    for lam in (1e-3, 0.1, 10.0):
        ours = fit_ridge(Xt, yt, lam)
        for p in range(3):
            sk = Ridge(alpha=lam * 600).fit(X[p], y)
            assert np.allclose(sk.coef_, ours.w[p].numpy(), atol=1e-4)
            assert abs(sk.intercept_ - ours.b[p].item()) < 1e-4
    path = RidgePath(Xt, yt)
    assert torch.allclose(path.probe(0.1).w, fit_ridge(Xt, yt, 0.1).w)


def test_lambda_selection_on_validation():
    X, y = _layers(1500, 20, 4, 2, seed=4)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    grid = (1.0, 1e-2, 1e-4)
    probe, val = select_logistic(Xt[:, :1000], yt[:1000], Xt[:, 1000:], yt[1000:], 4, grid, early_stop=None)
    assert val.shape == (2, 3)
    for p in range(2):
        g = int(np.argmax(val[p]))  # ties: the first (strongest) wins
        assert np.isclose(float(probe.lam[p]), sorted(grid, reverse=True)[g], rtol=1e-6)
    yr = torch.from_numpy(X[1, :, 0].astype(np.float64) * 2 + 0.1)
    rp, rval = select_ridge(Xt[:, :1000], yr[:1000], Xt[:, 1000:], yr[1000:], (10.0, 1e-3))
    assert rval.shape == (2, 2) and float(rval[1].max()) > 0.99


def test_lambda_path_stops_when_weaker_lambdas_stop_helping():
    X, y = _layers(600, 8, 2, 2, seed=5)
    X[:, :, 0] += 20 * y  # separable: every λ gets full validation accuracy
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    _, val = select_logistic(Xt[:, :400], yt[:400], Xt[:, 400:], yt[400:], 2, (1.0, 0.1, 0.01, 0.001))
    assert np.isnan(val[:, 2:]).all() and (val[:, :2] == 1.0).all()


def test_two_classes_equal_sklearns_binary_model():
    X, y = _layers(1200, 6, 2, 1, seed=6)
    Xt = torch.from_numpy(X)
    lam = 1e-2
    ours = fit_logistic(Xt, torch.from_numpy(y), 2, lam, tol=1e-7, max_iter=500)
    sk = LogisticRegression(C=1.0 / (lam * 1200), tol=1e-8, max_iter=1000).fit(X[0], y)
    w = (ours.W[0, :, 1] - ours.W[0, :, 0]).numpy()
    b = float(ours.b[0, 1] - ours.b[0, 0])
    assert np.allclose(w, sk.coef_[0], atol=2e-3) and abs(b - sk.intercept_[0]) < 2e-3


def test_chunked_objective_equals_autograd_of_the_mean_loss():
    """The row-chunked evaluation gives the exact objective and gradient, whatever the chunk."""
    from probes.fit import _LogisticObjective

    X, y = _layers(203, 6, 4, 3, seed=2)  # 203 rows: no chunk size below divides it
    Xt = torch.from_numpy(X).double()
    yt = torch.from_numpy(y)
    lam = torch.tensor([1e-1, 1e-2, 1e-3], dtype=torch.float64)
    K, d = 4, 6
    x = torch.randn(3, K * d + K, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    xr = x.clone().requires_grad_(True)
    W = xr[:, : K * d].reshape(3, K, d)
    logits = torch.einsum("pnd,pkd->pnk", Xt, W) + xr[:, None, K * d:]
    f_ref = torch.nn.functional.cross_entropy(logits.reshape(-1, K), yt.repeat(3), reduction="none"
                                              ).reshape(3, -1).mean(1) + 0.5 * lam * W.pow(2).sum((1, 2))
    (g_ref,) = torch.autograd.grad(f_ref.sum(), xr)
    idx = torch.arange(3)
    for chunk in (1, 7, 64, 203, 10_000):
        f, g = _LogisticObjective(Xt, yt, K, lam, "adaptive", chunk=chunk)(x, idx)
        torch.testing.assert_close(f, f_ref.detach(), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-12)
    # a subset of the problems (the active set of L-BFGS) gives their rows of the same result
    f2, g2 = _LogisticObjective(Xt, yt, K, lam, None, chunk=50)(x[[0, 2]], torch.tensor([0, 2]))
    torch.testing.assert_close(g2, g_ref[[0, 2]], rtol=1e-10, atol=1e-12)


def test_preconditioning_changes_the_path_not_the_optimum():
    """The 'adaptive' preconditioner and plain L-BFGS reach the same objective value and
    probabilities as each other and as scikit-learn, and 'adaptive' records p(1 − p) per class."""
    from probes.fit import _LogisticObjective

    P, d, K, lam = 2, 12, 6, 1e-3
    X, y = _layers(1500, d, K, P, seed=3)
    Xs = Standardizer.fit(torch.from_numpy(X))(torch.from_numpy(X))
    yt = torch.from_numpy(y)
    probs, iters = {}, {}
    for pre in ("adaptive", None):
        probe = fit_logistic(Xs, yt, K, lam, precondition=pre, max_iter=2000, tol=1e-6)
        probs[pre] = probe.log_probs(Xs).exp()
        iters[pre] = probe.n_iter
        assert probe.n_iter < 2000, pre
    assert (probs[None] - probs["adaptive"]).abs().max() < 1e-3
    sk = LogisticRegression(C=1.0 / (lam * 1500), max_iter=5000, tol=1e-8).fit(Xs[1].numpy(), y)
    assert np.abs(sk.predict_proba(Xs[1].numpy()) - probs["adaptive"][1].numpy()).max() < 1e-3
    # the curvature it records is mean p(1 − p) at the evaluated point
    obj = _LogisticObjective(Xs, yt, K, torch.full((P,), lam), "adaptive")
    probe = fit_logistic(Xs, yt, K, lam, max_iter=2000, tol=1e-6)
    x = torch.cat([probe.W.transpose(1, 2).reshape(P, -1), probe.b], dim=1)
    obj(x, torch.arange(P))
    p = probs["adaptive"]
    torch.testing.assert_close(obj.class_curvature, (p * (1 - p)).mean(dim=1), rtol=1e-4, atol=1e-6)
    # the trial preconditioners ("pi", "half") are gone from the product path
    with pytest.raises(ValueError, match="'adaptive' or None"):
        fit_logistic(Xs, yt, K, lam, precondition="pi")


def test_float32_fit_converges_to_a_tight_tolerance_on_a_flat_objective():
    """Near the optimum of a weakly regularised many-class fit the Armijo decrease is below
    float32 resolution; the line search must still make progress (approximate Wolfe) rather
    than stop early: the float32 answer matches the float64 one."""
    from probes.fit import _LogisticObjective

    P, d, K, lam = 2, 16, 12, 1e-4
    X, y = _layers(2000, d, K, P, seed=4)
    Xs = Standardizer.fit(torch.from_numpy(X))(torch.from_numpy(X))
    yt = torch.from_numpy(y)
    p32 = fit_logistic(Xs, yt, K, lam, max_iter=5000, tol=1e-6)
    p64 = fit_logistic(Xs.double(), yt, K, lam, max_iter=5000, tol=1e-7)
    assert p32.n_iter < 5000
    obj = _LogisticObjective(Xs.double(), yt, K, torch.full((P,), lam, dtype=torch.float64))
    x32 = torch.cat([p32.W.transpose(1, 2).reshape(P, -1), p32.b], dim=1).double()
    x64 = torch.cat([p64.W.transpose(1, 2).reshape(P, -1), p64.b], dim=1)
    f32, g32 = obj(x32, torch.arange(P))
    f64, _ = obj(x64, torch.arange(P))
    assert g32.abs().max() < 2e-6  # its gradient, recomputed in float64, meets the tolerance
    assert (f32 - f64).abs().max() < 1e-7


# ----------------------------------------------------------------------------- #14: fewer, cheaper fits
def test_a_shared_gram_basis_changes_the_path_not_the_optimum():
    """The preconditioner's eigenbasis from a superset of the rows (all training words, as the
    MDL blocks use) reaches the same probe as the block's own."""
    from probes.fit import GramBasis

    P, d, K, lam = 2, 10, 5, 1e-3
    X, y = _layers(1200, d, K, P, seed=6)
    Xs = Standardizer.fit(torch.from_numpy(X))(torch.from_numpy(X))
    yt = torch.from_numpy(y)
    block = Xs[:, :300]
    own = fit_logistic(block, yt[:300], K, lam, max_iter=3000, tol=1e-7)
    shared = fit_logistic(block, yt[:300], K, lam, max_iter=3000, tol=1e-7, basis=GramBasis.of(Xs))
    torch.testing.assert_close(shared.log_probs(Xs), own.log_probs(Xs), atol=2e-4, rtol=0)
    # the centred basis of standardised features is their covariance's eigenbasis
    basis = GramBasis.of(Xs)
    cov = torch.stack([torch.cov(Xs[p].T.double(), correction=0) for p in range(P)])
    torch.testing.assert_close(basis.evecs @ torch.diag_embed(basis.evals) @ basis.evecs.transpose(1, 2), cov,
                               atol=1e-8, rtol=1e-6)


def test_ridge_path_from_a_basis_equals_its_own():
    P, d = 3, 7
    X, _ = _layers(500, d, 3, P, seed=7)
    Xt = torch.from_numpy(X)
    y = torch.from_numpy(np.random.default_rng(7).normal(size=500))
    from probes.fit import GramBasis

    for lam in (10.0, 1e-2):
        a, b = RidgePath(Xt, y).probe(lam), RidgePath.from_basis(GramBasis.of(Xt), Xt, y).probe(lam)
        torch.testing.assert_close(a.w, b.w, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(a.b, b.b, atol=1e-6, rtol=1e-5)


def test_lbfgs_moves_only_the_problems_it_is_given():
    X, y = _layers(400, 6, 3, 3, seed=8)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    start = fit_logistic(Xt, yt, 3, 1e-1, tol=1e-6, max_iter=500)
    part = fit_logistic(Xt, yt, 3, 1e-3, init=start, problems=torch.tensor([0, 2]), tol=1e-6, max_iter=500)
    whole = fit_logistic(Xt, yt, 3, 1e-3, init=start, tol=1e-6, max_iter=500)
    torch.testing.assert_close(part.W[1], start.W[1])  # untouched
    for p in (0, 2):
        torch.testing.assert_close(part.log_probs(Xt)[p], whole.log_probs(Xt)[p], atol=1e-4, rtol=0)


def test_every_layer_stays_on_the_lambda_path_while_any_improves():
    """Problem 0 is separable (validation accuracy 1 from the strongest λ on); problem 1 keeps
    improving, so the path goes on for both and they choose what the whole grid chooses (a
    per-layer exit changed the demo's control scores: a control probe can plateau, then
    memorise at a weaker λ)."""
    X, y = _layers(900, 8, 3, 2, seed=9)
    X[0, :, 0] += 30 * y
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    grid = (1.0, 0.1, 0.01, 0.001)
    probe, val = select_logistic(Xt[:, :600], yt[:600], Xt[:, 600:], yt[600:], 3, grid)
    full, full_val = select_logistic(Xt[:, :600], yt[:600], Xt[:, 600:], yt[600:], 3, grid, early_stop=None)
    fitted = ~np.isnan(val[1])
    np.testing.assert_allclose(val[:, fitted], full_val[:, fitted])
    torch.testing.assert_close(probe.lam, full.lam)


def test_fit_threads_do_not_count_this_process_as_another_ones_load(monkeypatch):
    """On 2 cores with a load average of 1.0 that this process made itself (one fit thread for
    the last minute), the next fit may use both cores; the same load made by another process
    leaves one."""
    import probes.fit as fit

    monkeypatch.setattr(fit.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(fit.os, "getloadavg", lambda: (1.0, 1.0, 1.0))
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    cpu = torch.device("cpu")
    monkeypatch.setattr(fit, "_own_load", lambda: 1.0)
    assert fit.auto_threads(1e12, cpu, None) == 2
    monkeypatch.setattr(fit, "_own_load", lambda: 0.0)
    assert fit.auto_threads(1e12, cpu, None) == 1
    assert fit.auto_threads(1e3, cpu, None) == 1  # small fits: one thread
    assert fit.auto_threads(1e12, cpu, 3) == 3  # an explicit --threads wins


def test_own_load_is_this_process_cpu_seconds_per_second(monkeypatch):
    import probes.fit as fit

    clock = {"wall": 100.0, "cpu": 10.0}
    monkeypatch.setattr(fit.time, "monotonic", lambda: clock["wall"])
    monkeypatch.setattr(fit.time, "process_time", lambda: clock["cpu"])
    monkeypatch.setattr(fit, "_own_samples", [(100.0, 10.0)])
    assert fit._own_load() == 0.0  # no time has passed
    clock.update(wall=130.0, cpu=70.0)  # two cores busy for 30 s
    assert fit._own_load() == pytest.approx(2.0)
    clock.update(wall=200.0, cpu=100.0)  # then 30 CPU s in 70 s; the window drops samples older than a minute
    assert fit._own_load() == pytest.approx(30.0 / 70.0)
