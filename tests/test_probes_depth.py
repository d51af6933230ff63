"""Expected layer (Tenney et al. 2019) and the hierarchy verdict on hand-computed cases."""

import math

import numpy as np
import pytest

from probes.depth import (
    expected_layer,
    expected_layer_anchored,
    expected_layer_tenney,
    hierarchy_verdict,
    peak_layer,
)


def test_tenney_expected_layer_by_hand():
    # Δ = 0.1, 0.3, 0.0 at layers 1, 2, 3 → (1·0.1 + 2·0.3 + 3·0) / 0.4 = 1.75
    assert math.isclose(expected_layer_tenney(np.array([0.5, 0.6, 0.9, 0.9])), 1.75)
    # a negative Δ counts as in the paper: (0.3 − 2·0.1 + 3·0.4) / 0.6 = 13/6
    assert math.isclose(expected_layer_tenney(np.array([0.2, 0.5, 0.4, 0.8])), 13 / 6)
    # all of the gain at one layer → that layer
    assert math.isclose(expected_layer_tenney(np.array([0.3, 0.3, 0.3, 0.9, 0.9, 0.9])), 3.0)
    # nothing gained after layer 0: undefined
    assert math.isnan(expected_layer_tenney(np.array([0.9, 0.9, 0.9])))


def test_anchored_expected_layer_by_hand():
    s = np.array([0.5, 0.6, 0.9, 0.9])
    # layer 0 at the baseline: identical to Tenney
    assert math.isclose(expected_layer_anchored(s, 0.5), 1.75)
    # baseline 0.3: Δ(0) = 0.2 → 0.7 / 0.6, which is Tenney · G / (Δ(0) + G) = 1.75 · 0.4 / 0.6
    assert math.isclose(expected_layer_anchored(s, 0.3), 0.7 / 0.6)
    # a lexical property: everything at layer 0
    assert expected_layer_anchored(np.array([0.9, 0.9, 0.9]), 0.5) == 0.0
    # layer 0 below the baseline does not count negatively
    assert math.isclose(expected_layer_anchored(np.array([0.4, 0.5, 0.9]), 0.5), (1 * 0.1 + 2 * 0.4) / 0.5)
    assert math.isnan(expected_layer_anchored(np.array([0.5, 0.5]), 0.5))
    # noisy drops after layer 0 would give (0.05 − 2·0.1) / 0.35 < 0: clipped to [0, L]
    assert expected_layer_anchored(np.array([0.9, 0.95, 0.85]), 0.5) == 0.0
    assert math.isnan(expected_layer_tenney(np.array([0.9, 0.95, 0.85])))  # no net gain after layer 0
    assert math.isclose(expected_layer(s, 0.3, kind="anchored"), 0.7 / 0.6)
    assert math.isclose(expected_layer(s, kind="tenney"), 1.75)
    with pytest.raises(ValueError):
        expected_layer(s, kind="median")


def test_expected_layer_vectorised_over_resamples():
    boot = np.array([[0.5, 0.6, 0.9, 0.9], [0.5, 0.5, 0.5, 0.9]])
    assert np.allclose(expected_layer_tenney(boot), [1.75, 3.0])
    assert np.allclose(expected_layer_anchored(boot, np.array([0.5, 0.3])), [1.75, 3 * 0.4 / 0.6])


def test_peak_layer():
    assert peak_layer(np.array([0.1, 0.5, 0.5, 0.2])) == 1
    assert peak_layer(np.array([np.nan, 0.2, 0.3])) == 2


LEVELS = {"pos": "early", "word": "early", "upos": "middle", "depth": "middle", "agree": "late"}


def test_verdict_holds_by_hand():
    # four resamples; level means: early = mean(pos, word), middle = mean(upos, depth), late = agree
    boot = {"pos": np.array([0.0, 0.0, 1.0, 0.0]), "word": np.array([0.0, 0.0, 1.0, 0.0]),
            "upos": np.array([1.0, 2.0, 1.0, 1.0]), "depth": np.array([3.0, 2.0, 1.0, 2.0]),
            "agree": np.array([3.0, 3.0, 3.0, 3.0])}
    point = {"pos": 0.0, "word": 0.2, "upos": 1.0, "depth": 2.0, "agree": 3.0}
    # per resample: early 0,0,1,0; middle 2,2,1,1.5; late 3 → order holds in 3 of 4 (not in the 3rd)
    v = hierarchy_verdict(point, boot, LEVELS, threshold=0.75)
    assert v["holds"] is True and v["p_order"] == 0.75
    assert v["levels"]["early"]["mean"] == pytest.approx(0.1)
    assert v["levels"]["middle"]["mean"] == pytest.approx(1.5)
    assert v["levels"]["middle"]["tasks"] == ["upos", "depth"]
    strict = hierarchy_verdict(point, boot, LEVELS)  # the default 95 %
    assert strict["holds"] is False
    failing = {(p["lower"], p["upper"]): p for p in strict["failing"]}
    assert set(failing) == {("early", "middle")}
    assert failing[("early", "middle")]["p_in_order"] == 0.75
    assert failing[("early", "middle")]["difference"] == pytest.approx(1.4)
    assert "early < middle in only 75.0%" in strict["message"]


def test_verdict_on_simulated_resamples():
    rng = np.random.default_rng(0)
    B = 2000

    def boot(mean, sd):
        return rng.normal(mean, sd, size=B)

    good = {"pos": boot(0.2, 0.1), "word": boot(0.1, 0.1), "upos": boot(1.5, 0.2), "depth": boot(2.0, 0.2),
            "agree": boot(4.0, 0.3)}
    point = {k: float(v.mean()) for k, v in good.items()}
    v = hierarchy_verdict(point, good, LEVELS)
    assert v["holds"] is True and v["p_order"] > 0.99 and v["failing"] == []
    assert v["message"].startswith("holds")
    bad = dict(good, agree=boot(1.75, 0.3))  # late no deeper than middle
    point = {k: float(v.mean()) for k, v in bad.items()}
    v = hierarchy_verdict(point, bad, LEVELS)
    assert v["holds"] is False
    pairs = {(p["lower"], p["upper"]) for p in v["failing"]}
    assert pairs == {("middle", "late")}
    p = v["failing"][0]
    assert 0.3 < p["p_in_order"] < 0.7 and abs(p["difference"]) < 0.1
    assert p["difference_ci"][0] < 0 < p["difference_ci"][1]
    assert "middle < late" in v["message"]


def test_verdict_incomplete_without_a_level():
    v = hierarchy_verdict({"pos": 0.1, "upos": 1.0}, {"pos": np.zeros(10), "upos": np.ones(10)},
                          {"pos": "early", "upos": "middle"})
    assert v["holds"] is None and "late" in v["message"]
    assert [(p["lower"], p["upper"]) for p in v["pairs"]] == [("early", "middle")]
    assert v["pairs"][0]["ok"] is True


def test_verdict_ignores_undefined_expected_layers():
    boot = {"pos": np.zeros(50), "word": np.full(50, np.nan), "upos": np.ones(50), "agree": np.full(50, 2.0)}
    point = {"pos": 0.0, "word": float("nan"), "upos": 1.0, "agree": 2.0}
    v = hierarchy_verdict(point, boot, {"pos": "early", "word": "early", "upos": "middle", "agree": "late"})
    assert v["holds"] is True and v["levels"]["early"]["mean"] == 0.0
