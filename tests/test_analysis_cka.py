"""Linear CKA against hand computations and the HSIC definition."""

import numpy as np
import pytest

from app.analysis import cka_matrix, linear_cka


def test_linear_cka_by_hand():
    # centred columns; YᵀX = 1, XᵀX = 2, YᵀY = 2 → CKA = 1² / (2·2)
    x = np.array([[1.0], [-1.0], [0.0]])
    y = np.array([[1.0], [0.0], [-1.0]])
    assert linear_cka(x, y) == pytest.approx(0.25)
    # centring matters: shifting a representation changes nothing
    assert linear_cka(x + 7, y - 3) == pytest.approx(0.25)
    assert linear_cka(x, 5 * x) == pytest.approx(1.0)


def hsic_cka(x, y):
    """Reference: biased HSIC with explicit centring matrices."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, l = x @ x.T, y @ y.T
    hsic = lambda a, b: np.trace(a @ h @ b @ h)  # noqa: E731
    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


def test_linear_cka_invariances_and_reference():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 5))
    y = x @ rng.normal(size=(5, 4)) + 0.5 * rng.normal(size=(30, 4))
    assert linear_cka(x, y) == pytest.approx(hsic_cka(x, y))
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    assert linear_cka(x @ q * 3.0, y) == pytest.approx(linear_cka(x, y))  # rotation + isotropic scale
    assert np.isnan(linear_cka(np.ones((4, 2)), rng.normal(size=(4, 2))))  # constant → undefined


@pytest.mark.parametrize("n", [6, 50])  # fewer positions than features (Gram form) and more
def test_cka_matrix_matches_pairs(n):
    rng = np.random.default_rng(n)
    resid = rng.normal(size=(4, n, 8)).cumsum(axis=0)  # a drifting stream
    m = cka_matrix(resid)
    assert m.shape == (4, 4)
    assert np.allclose(m, m.T)
    assert np.allclose(np.diag(m), 1.0)
    for a in range(4):
        for b in range(4):
            assert m[a, b] == pytest.approx(hsic_cka(resid[a], resid[b]))
