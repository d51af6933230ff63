"""Probe fitting in torch agrees with scikit-learn (LogisticRegression, Ridge) on the same data."""

import numpy as np
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
