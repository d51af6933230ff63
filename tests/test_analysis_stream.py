"""Residual-stream statistics and checkpoint drift against hand computations."""

import math

import numpy as np
import pytest
import torch

from app.analysis import checkpoint_drift, stream_stats

# [layers 0..2, 2 positions, d = 2]
RESID = np.array([
    [[3.0, 4.0], [1.0, 0.0]],
    [[3.0, 4.0], [1.0, 1.0]],
    [[-3.0, -4.0], [2.0, 2.0]],
])


def test_stream_stats_by_hand():
    s = stream_stats(RESID)
    # norms: layer 0 (5, 1); layer 1 (5, √2); layer 2 (5, 2√2)
    assert s.norm == pytest.approx([3.0, (5 + math.sqrt(2)) / 2, (5 + 2 * math.sqrt(2)) / 2])
    # block 1: position 0 unchanged (0/5), position 1 moved by (0, 1) from a norm of 1 → mean 0.5
    # block 2: position 0 moved by (−6, −8) from 5 → 2; position 1 moved by (1, 1) from √2 → 1
    assert s.rel_update == pytest.approx([0.5, 1.5])
    # cos: block 1: 1 and cos((1,1), (1,0)) = 1/√2; block 2: −1 and 1
    assert s.cos == pytest.approx([(1 + 1 / math.sqrt(2)) / 2, 0.0])
    assert s.n_layer == 2 and s.n_positions == 2


def test_stream_stats_accepts_torch_and_one_position():
    s = stream_stats(torch.tensor(RESID[:, 0]))  # [L+1, d]
    assert s.norm == pytest.approx([5.0, 5.0, 5.0])
    assert s.rel_update == pytest.approx([0.0, 2.0])
    assert s.cos == pytest.approx([1.0, -1.0])


def test_stream_stats_rejects_bad_shapes():
    with pytest.raises(ValueError, match="n_layer"):
        stream_stats(np.zeros((2, 3, 4, 5)))


def test_checkpoint_drift_scaling_and_rotation():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 40, 6))
    d = checkpoint_drift(a, 2 * a)  # every vector doubled: moved by its own length
    assert d["rel_change"] == pytest.approx([1.0] * 3)
    assert d["cos"] == pytest.approx([1.0] * 3)
    assert d["cka"] == pytest.approx([1.0] * 3)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    rotated = a @ q  # same geometry in another basis: CKA 1, cosine not
    d = checkpoint_drift(a, rotated)
    assert d["cka"] == pytest.approx([1.0] * 3)
    manual_cos = np.mean([(a[0, i] @ rotated[0, i]) / (np.linalg.norm(a[0, i]) * np.linalg.norm(rotated[0, i]))
                          for i in range(40)])
    assert d["cos"][0] == pytest.approx(manual_cos)
    manual_rel = np.mean([np.linalg.norm(rotated[1, i] - a[1, i]) / np.linalg.norm(a[1, i]) for i in range(40)])
    assert d["rel_change"][1] == pytest.approx(manual_rel)
    assert d["a"].norm == pytest.approx(d["b"].norm)  # rotation keeps norms


def test_checkpoint_drift_shape_mismatch():
    with pytest.raises(ValueError, match="disagree"):
        checkpoint_drift(np.zeros((3, 4, 2)), np.zeros((3, 5, 2)))
