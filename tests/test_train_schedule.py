"""Learning-rate schedule: linear warmup, cosine decay to lr·min_lr_ratio, constant."""

import math

import pytest

from gpt_model.schedule import lr_at


def test_warmup_is_linear_and_reaches_the_peak_on_its_last_step():
    kw = dict(lr=1e-3, max_steps=100, warmup_steps=10, min_lr_ratio=0.1)
    assert [lr_at(s, **kw) for s in range(10)] == pytest.approx([1e-4 * (s + 1) for s in range(10)])
    assert lr_at(9, **kw) == pytest.approx(1e-3)
    assert lr_at(10, **kw) == pytest.approx(1e-3)  # cosine starts at the peak


def test_cosine_values_midpoint_and_floor():
    kw = dict(lr=1e-3, max_steps=110, warmup_steps=10, min_lr_ratio=0.1)
    min_lr = 1e-4
    assert lr_at(60, **kw) == pytest.approx(min_lr + 0.5 * (1e-3 - min_lr))  # halfway
    assert lr_at(35, **kw) == pytest.approx(min_lr + 0.5 * (1 + math.cos(math.pi * 0.25)) * (1e-3 - min_lr))
    assert lr_at(110, **kw) == pytest.approx(min_lr)
    assert lr_at(500, **kw) == pytest.approx(min_lr)  # past the end: stays at the floor
    values = [lr_at(s, **kw) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(values, values[1:]))  # monotone decay


def test_no_warmup_and_constant_schedule():
    assert lr_at(0, lr=2e-3, max_steps=10, warmup_steps=0) == pytest.approx(2e-3)
    kw = dict(lr=2e-3, max_steps=10, warmup_steps=4, schedule="constant")
    assert [lr_at(s, **kw) for s in (0, 3, 4, 9, 20)] == pytest.approx([5e-4, 2e-3, 2e-3, 2e-3, 2e-3])


def test_bad_schedule_arguments():
    with pytest.raises(ValueError, match="schedule"):
        lr_at(0, lr=1e-3, max_steps=10, schedule="linear-ish")
    with pytest.raises(ValueError, match="step"):
        lr_at(-1, lr=1e-3, max_steps=10)
