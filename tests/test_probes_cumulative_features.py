"""The cumulative probes' inputs: every layer side by side (PCA-reduced above the cap), and the
centred moments the ordinal cumulative probes read, a block of rows at a time."""

import numpy as np
import torch

from probes.fit import GramBasis
from probes.strategy import SplitFeatures, _centred_moments, layers_side_by_side


def _split(P: int, n: tuple[int, int, int], d: int, seed: int = 0) -> SplitFeatures:
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(P, d, d, generator=g)  # correlated features, as in a residual stream
    return SplitFeatures(*(torch.randn(P, m, d, generator=g) @ mix for m in n))


def test_layers_side_by_side_without_reduction_is_the_concatenation():
    X = _split(3, (50, 10, 20), 4)
    Z, k, reduced = layers_side_by_side(X, cap=12)
    assert (k, reduced) == (4, False)
    for part, z in zip(X, Z):
        assert z.shape == (1, part.shape[1], 12)
        for l in range(3):  # layer l in columns l·k … (l + 1)·k
            torch.testing.assert_close(z[0, :, l * k:(l + 1) * k], part[l], rtol=0, atol=0)


def test_layers_side_by_side_reduces_each_layer_to_its_leading_components():
    X = _split(3, (400, 60, 80), 8, seed=1)
    Z, k, reduced = layers_side_by_side(X, cap=9)
    assert (k, reduced) == (3, True)
    V = GramBasis.of(X.train).evecs[:, :, -k:].float()
    train = torch.cat([X.train[l] @ V[l] for l in range(3)], dim=1)
    mean, std = train.mean(dim=0), train.std(dim=0, unbiased=False)
    for part, z in zip(X, Z):
        want = (torch.cat([part[l] @ V[l] for l in range(3)], dim=1) - mean) / std
        torch.testing.assert_close(z[0], want, rtol=1e-4, atol=1e-4)
    # re-standardised on the training words
    torch.testing.assert_close(Z.train[0].mean(dim=0), torch.zeros(9), rtol=0, atol=1e-5)
    torch.testing.assert_close(Z.train[0].std(dim=0, unbiased=False), torch.ones(9), rtol=0, atol=1e-4)


def test_centred_moments_in_blocks_equal_the_direct_float64_ones():
    rng = np.random.default_rng(2)
    n, m = 9000, 6  # more than two blocks of 4096 rows
    Z = rng.normal(size=(n, m)).astype(np.float32) + 3.0
    y = Z[:, 0].astype(np.float64) * 2 + rng.normal(size=n)
    mean, gram, xty = _centred_moments(torch.from_numpy(Z), torch.from_numpy(y))
    Zc = Z.astype(np.float64) - Z.astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(mean.numpy()[0], Z.astype(np.float64).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(gram.numpy(), Zc.T @ Zc / n, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(xty.numpy(), Zc.T @ (y - y.mean()) / n, rtol=1e-10, atol=1e-12)
