"""MDL online code (Voita & Titov 2020) on cases with a known answer."""

import math

import numpy as np
import pytest
import torch

from probes.mdl import BLOCKS, block_ends, online_codelength, resampled_codelengths
from probes.metrics import Bootstrap


def test_block_schedule():
    assert BLOCKS == (0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.0625, 0.125, 0.25, 0.5, 1.0)
    ends = block_ends(10_000)
    assert ends == [10, 20, 40, 80, 160, 320, 625, 1250, 2500, 5000, 10_000]
    small = block_ends(50)
    assert small[0] == 1 and small[-1] == 50 and all(a < b for a, b in zip(small, small[1:]))
    with pytest.raises(ValueError):
        block_ends(1)


def test_random_labels_do_not_compress():
    rng = np.random.default_rng(0)
    n, K = 4000, 4
    X = torch.from_numpy(rng.normal(size=(2, n, 8)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, K, size=n))
    out = online_codelength(X, y, K, 1e-2)
    assert out["uniform_bits"] == pytest.approx(n * 2.0)
    # the probe can learn nothing: the online code is about the uniform code (a little worse)
    assert np.all((out["compression"] > 0.9) & (out["compression"] < 1.01)), out["compression"]


def test_separable_labels_compress_a_lot():
    rng = np.random.default_rng(1)
    n, K = 4000, 4
    y = rng.integers(0, K, size=n)
    X = rng.normal(size=(1, n, 8)).astype(np.float32)
    X[0, np.arange(n), y] += 8.0  # one coordinate per class: perfectly separable
    out = online_codelength(torch.from_numpy(X), torch.from_numpy(y), K, 1e-3)
    assert out["compression"][0] > 8
    # at least the first block, sent with the uniform code
    assert out["codelength_bits"][0] >= out["first_block"] * math.log2(K)


def test_online_code_by_hand_for_a_constant_label():
    # every label is class 0 and the features carry nothing: after the uniform first block, each
    # later block costs almost nothing, so L_online ≈ t₁·log₂K
    n, K = 2000, 2
    X = torch.zeros(1, n, 3)
    y = torch.zeros(n, dtype=torch.long)
    out = online_codelength(X, y, K, 1e-2)
    assert out["first_block"] == 2
    assert out["codelength_bits"][0] == pytest.approx(2.0, abs=0.5)
    assert out["compression"][0] > 500


def test_word_bits_add_up_to_the_codelength():
    rng = np.random.default_rng(2)
    n, K = 1000, 3
    y = rng.integers(0, K, size=n)
    X = rng.normal(size=(2, n, 4)).astype(np.float32)
    X[1, np.arange(n), y] += 2.0
    out = online_codelength(torch.from_numpy(X), torch.from_numpy(y), K, 1e-2, word_bits=True)
    bits = out["word_bits"]
    assert bits.shape == (2, n) and np.all(bits >= 0)
    assert np.allclose(bits.sum(axis=1), out["codelength_bits"])
    # the first block is sent with the uniform code
    assert np.allclose(bits[:, :out["first_block"]], math.log2(K))
    # the informative layer's words are cheaper after the first blocks
    assert bits[1, n // 2:].mean() < 0.6 * bits[0, n // 2:].mean()
    assert "word_bits" not in online_codelength(torch.from_numpy(X), torch.from_numpy(y), K, 1e-2)


def test_resampled_codelengths_by_hand():
    # 3 sentences with 2, 1 and 3 words; two layers
    sentence = np.array([0, 0, 1, 2, 2, 2])
    word_bits = np.array([[1.0, 2.0, 4.0, 0.5, 0.5, 1.0], [3.0, 0.0, 1.0, 1.0, 1.0, 1.0]])
    boot = Bootstrap(3, n_resamples=4, seed=0)
    codelength, uniform = resampled_codelengths(word_bits, 1.5, sentence, boot)
    assert codelength.shape == (4, 2) and uniform.shape == (4,)
    per_sentence = np.array([[3.0, 3.0], [4.0, 1.0], [2.0, 3.0]])  # [sentence, layer]
    words = np.array([2, 1, 3])
    for b in range(4):
        c = boot.counts[b]
        assert np.allclose(codelength[b], c @ per_sentence)
        assert uniform[b] == pytest.approx(1.5 * (c @ words))
    # a resample that draws every sentence once is the code itself
    once = Bootstrap(3, n_resamples=1, seed=0)
    once.counts = np.ones((1, 3))
    codelength, uniform = resampled_codelengths(word_bits, 1.5, sentence, once)
    assert np.allclose(codelength[0], word_bits.sum(axis=1)) and uniform[0] == 9.0
