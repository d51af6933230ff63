"""The two axes of a task (lexical share; depth of what is gained after the embeddings), the
verdict on the depth axis (fixed task sets, undefined resamples counted against, effect sizes),
refits, and choosing the peak layer on validation data (issue 20)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import probes
from probes.depth import (
    bits_saved_after_embeddings,
    gain_is_defined,
    hierarchy_verdict,
    lexical_share,
    score_gained_after_embeddings,
)
from probes.results import SCHEMA, SCHEMA_V2, ProbeResults
from probes.suite import combine_refits, redraw_train_val, split_sentences
from tests.test_probes_depth import _planted

LEVELS = {"pos": "early", "word": "early", "upos": "middle", "agree": "late"}


# ----------------------------------------------------------------------------- the axes, by hand
def test_bits_saved_after_the_embeddings():
    # the best of the uniform code and layer 0 (100) down to the best later layer (40)
    assert bits_saved_after_embeddings(np.array([100.0, 120.0, 60.0, 40.0]), 200.0) == 60.0
    # layer 0 worse than the uniform code: counted from the uniform code
    assert bits_saved_after_embeddings(np.array([250.0, 150.0]), 200.0) == 50.0
    # nothing after layer 0 codes better: 0, never negative
    assert bits_saved_after_embeddings(np.array([10.0, 50.0, 40.0]), 200.0) == 0.0
    assert np.allclose(bits_saved_after_embeddings(np.array([[100.0, 90.0], [100.0, 110.0]]), np.array([200.0, 200.0])),
                       [10.0, 0.0])


def test_score_gained_and_when_a_gain_defines_a_depth():
    assert score_gained_after_embeddings(np.array([0.5, 0.7, 0.6])) == pytest.approx(0.1)
    # defined only when the 95% interval's lower end is above 0
    assert gain_is_defined(np.full(100, 0.2)) is True
    assert gain_is_defined(np.r_[np.zeros(30), np.full(970, 5.0)]) is False  # 3% of resamples at 0
    assert gain_is_defined(np.r_[np.zeros(20), np.full(980, 5.0)]) is True
    assert gain_is_defined(np.r_[np.full(50, -0.1), np.full(50, 0.3)]) is False
    assert gain_is_defined(np.array([])) is False and gain_is_defined(np.full(5, np.nan)) is False


def test_lexical_share_by_hand():
    # (0.9 − 0.5) / (1.0 − 0.5)
    assert lexical_share(0.9, 1.0, 0.5) == pytest.approx(0.8)
    assert lexical_share(1.0, 1.0, 0.5) == 1.0
    assert math.isnan(lexical_share(0.5, 0.5, 0.5))  # no gain over the baseline: undefined
    assert np.allclose(lexical_share(np.array([0.6, 0.9]), np.array([1.0, 0.8]), np.array([0.5, 0.5])),
                       [0.2, 4 / 3])  # a resample whose layer 0 beats its peak: above 1, not clipped


# ----------------------------------------------------------------------------- the verdict
def test_a_resample_where_a_task_is_undefined_counts_against_the_order():
    point = {"pos": 0.5, "word": 0.5, "upos": 2.0, "agree": 4.0}
    boot = {"pos": np.full(10, 0.5), "word": np.full(10, 0.5), "upos": np.full(10, 2.0),
            "agree": np.r_[np.full(8, 4.0), np.nan, np.nan]}
    v = hierarchy_verdict(point, boot, LEVELS)
    # nanmean would have compared {pos, word} < {upos} < {} in those two: now they are out of order
    assert v["p_order"] == 0.8 and v["holds"] is False
    ml = next(p for p in v["pairs"] if (p["lower"], p["upper"]) == ("middle", "late"))
    assert ml["p_in_order"] == 0.8 and ml["difference"] == 2.0 and ml["difference_ci"] == [2.0, 2.0]
    assert v["levels"]["early"]["tasks"] == ["pos", "word"]


def test_tasks_undefined_at_the_point_leave_their_level_and_early_can_be_uninformative():
    point = {"pos": np.nan, "word": np.nan, "upos": 2.0, "agree": 3.5}
    boot = {"pos": np.full(20, np.nan), "word": np.full(20, 1.0),
            "upos": np.linspace(1.5, 2.5, 20), "agree": np.linspace(3.0, 4.0, 20)}
    v = hierarchy_verdict(point, boot, LEVELS)
    assert v["holds"] is True and v["p_order"] == 1.0
    assert v["compared"] == ["middle", "late"] and v["uninformative"] == ["early"]
    assert v["undefined"] == ["pos", "word"] and "early" not in v["levels"]
    assert [(p["lower"], p["upper"]) for p in v["pairs"]] == [("middle", "late")]
    assert v["message"] == ("holds: middle < late in 100.0% of resamples (late − middle = +1.50 layers "
                            "[+1.50, +1.50]); early not compared (no task with a defined depth: what it carries is "
                            "in the embeddings); undefined: pos, word")


def test_a_late_level_without_a_defined_depth_is_incomplete():
    v = hierarchy_verdict({"pos": 0.0, "upos": 2.0, "agree": np.nan},
                          {"pos": np.zeros(5), "upos": np.full(5, 2.0), "agree": np.full(5, 3.0)},
                          {"pos": "early", "upos": "middle", "agree": "late"})
    assert v["holds"] is None and v["p_order"] is None
    assert v["message"].startswith("incomplete: no task with a defined expected layer at level(s) late")
    assert v["undefined"] == ["agree"]


def test_the_effect_size_is_the_difference_of_level_means_with_its_interval():
    rng = np.random.default_rng(0)
    boot = {"pos": rng.normal(0.2, 0.1, 400), "upos": rng.normal(2.0, 0.3, 400), "agree": rng.normal(3.2, 0.3, 400)}
    v = hierarchy_verdict({"pos": 0.2, "upos": 2.0, "agree": 3.2}, boot,
                          {"pos": "early", "upos": "middle", "agree": "late"})
    ml = next(p for p in v["pairs"] if (p["lower"], p["upper"]) == ("middle", "late"))
    diff = boot["agree"] - boot["upos"]
    assert ml["difference"] == pytest.approx(1.2)
    assert ml["difference_ci"] == pytest.approx(list(np.percentile(diff, [2.5, 97.5])))
    assert ml["p_in_order"] == pytest.approx(float((diff > 0).mean()))
    assert "late − middle = +1.20 layers [" in v["message"]


# ----------------------------------------------------------------------------- refits
def test_redraw_keeps_the_test_sentences_and_redraws_the_rest():
    sentences = [[f"s{i}", "x"] for i in range(200)]
    first = split_sentences(sentences, (0.7, 0.1, 0.2), seed=0)
    again = redraw_train_val(sentences, first, (0.7, 0.1, 0.2), seed=5)
    assert np.array_equal(again == 2, first == 2)
    assert not np.array_equal(again, first)
    assert (again == 0).sum() == first.__eq__(0).sum() and (again == 1).sum() == (first == 1).sum()
    assert np.array_equal(redraw_train_val(sentences, first, (0.7, 0.1, 0.2), seed=5), again)
    # copies of one text stay together
    dup = [["a"], ["a"], ["b"], ["c"], ["c"], ["d"], ["e"]]
    split = redraw_train_val(dup, np.array([0, 0, 2, 1, 1, 0, 0]), (0.7, 0.1, 0.2), seed=1)
    assert split[0] == split[1] and split[3] == split[4] and split[2] == 2


def test_combine_refits_mixes_the_resamples_refit_by_refit():
    points = np.array([1.0, 2.0, 6.0])
    boots = np.stack([np.full(7, 1.0), np.full(7, 2.0), np.full(7, 6.0)])  # [R, B]
    point, boot = combine_refits(points, boots)
    assert point == 3.0
    assert boot.tolist() == [1.0, 2.0, 6.0, 1.0, 2.0, 6.0, 1.0]  # resample b from refit b mod R
    # the mixture's spread is the spread between refits plus that within one
    rng = np.random.default_rng(1)
    within = rng.normal(0, 1.0, size=(4, 4000)) + np.array([0.0, 3.0, 6.0, 9.0])[:, None]
    _, mixed = combine_refits(within.mean(axis=1), within)
    assert mixed.var() == pytest.approx(1.0 + np.var([0.0, 3.0, 6.0, 9.0]), rel=0.05)


def test_refits_change_the_fits_not_the_test_words():
    X, sentences, tasks = _planted(160)
    cfg = dict(n_bootstrap=100, lambdas=(1e-1, 1e-3), max_iter=200, control=False)
    one = probes.ProbeSuite(tasks[:2], probes.ProbeConfig(refits=1, **cfg)).fit(X, sentences)
    three = probes.ProbeSuite(tasks[:2], probes.ProbeConfig(refits=3, **cfg)).fit(X, sentences)
    suite = probes.ProbeSuite(tasks[:2], probes.ProbeConfig(refits=3, **cfg))
    refits = suite.prepare(sentences).refits
    assert [r.index for r in refits] == [0, 1, 2]
    for r in refits[1:]:
        assert np.array_equal(r.split == 2, refits[0].split == 2) and not np.array_equal(r.split, refits[0].split)
        assert np.array_equal(r.splits["t0"].test_words, refits[0].splits["t0"].test_words)
    t1, t3 = one.tasks["t1"], three.tasks["t1"]
    assert t1.refits == 1 and t3.refits == 3 and t1.n_words == t3.n_words
    # the point is the mean of three fits: not the first fit's alone
    assert t3.layers[1].score != t1.layers[1].score
    bits1 = [x.mdl.codelength_bits for x in t1.layers]
    bits3 = [x.mdl.codelength_bits for x in t3.layers]
    assert bits1 != bits3 and t3.stages_s["fit"] > 0


def test_peak_layer_and_lexical_flag_come_from_validation_scores():
    X, sentences, tasks = _planted(160)
    fit = probes.ProbeSuite(tasks, probes.ProbeConfig(n_bootstrap=50, lambdas=(1e-1,), max_iter=200, control=False,
                                                      refits=2)).fit(X, sentences)
    for name, r in fit.tasks.items():
        val = [x.val_score for x in r.layers]
        assert all(v is not None for v in val)
        assert r.peak_layer == int(np.argmax(val)), name
        assert r.peak_score == r.layers[r.peak_layer].score  # reported on test
    assert fit.tasks["t0"].lexical is True and fit.tasks["t2"].lexical is False


# ----------------------------------------------------------------------------- results.json
def test_new_fields_round_trip_and_schema_2_files_still_load(tmp_path):
    X, sentences, tasks = _planted(120)
    fit = probes.ProbeSuite(tasks, probes.ProbeConfig(n_bootstrap=50, lambdas=(1e-1,), max_iter=200,
                                                      refits=2)).fit(X, sentences)
    e = fit.tasks["t1"].expected_layer
    assert e.depth_source == "mdl" and e.gain_unit == "bits" and e.gain.value > 0 and e.depth is not None
    assert fit.tasks["len"].expected_layer.depth_source == "tenney"
    d = fit.tasks["t1"].to_dict()
    assert {"depth", "depth_ci", "gain", "gain_unit", "depth_source"} <= set(d["expected_layer"])
    assert d["refits"] == 2 and set(d["lexical_share"]) == {"value", "ci"}
    assert SCHEMA == "stratascope.probes/3" and SCHEMA_V2 in probes.results.READABLE_SCHEMAS
    assert ProbeResults  # loaded through probes.load_results in tests/test_probes_results.py


# ----------------------------------------------------------------------------- across seeds
def _seed(mid: float, late: float, n: int = 200) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    return ({"word": np.nan, "upos": mid, "agree": late},
            {"word": np.full(n, np.nan), "upos": np.full(n, mid), "agree": np.full(n, late)})


def test_verdict_across_seeds_takes_the_seed_as_the_unit():
    from probes.depth import seed_verdict

    levels = {"word": "early", "upos": "middle", "agree": "late"}
    v = seed_verdict([_seed(2.0, 3.0), _seed(2.5, 3.1), _seed(1.5, 3.5)], levels)
    assert v["holds"] is True and v["p_order"] == 1.0 and v["n_seeds"] == 3
    assert v["compared"] == ["middle", "late"] and v["undefined"] == ["word"]
    assert v["pairs"][0]["difference"] == pytest.approx((1.0 + 0.6 + 2.0) / 3)
    assert v["levels"]["middle"]["tasks"] == ["upos"]
    # one seed in the wrong order by much: only resamples that draw it rarely stay in order
    v = seed_verdict([_seed(2.0, 3.0), _seed(2.0, 3.0), _seed(4.5, 2.0)], levels)
    # in order only when the bad seed is not drawn at all (one draw of it: 2·(+1) − 2.5 < 0): (2/3)³
    assert v["holds"] is False and v["p_order"] == pytest.approx((2 / 3) ** 3, abs=0.1)
    # a task undefined in one seed is left out of its level in all of them
    point, boot = _seed(2.0, 3.0)
    point = {**point, "upos2": np.nan}
    boot = {**boot, "upos2": np.full(200, 9.0)}
    v = seed_verdict([(point, boot), ({**_seed(2.0, 3.0)[0], "upos2": 2.0}, {**_seed(2.0, 3.0)[1],
                                                                             "upos2": np.full(200, 2.0)})],
                     {**levels, "upos2": "middle"})
    assert v["undefined"] == ["word", "upos2"] and v["levels"]["middle"]["tasks"] == ["upos"]


def test_probe_with_seeds_gives_the_verdict_across_them():
    import hooks
    import torch
    from corpus import DEFAULT_GRAMMAR, WordTokenizer, generate_sentences
    from gpt_model import GPT, GPTConfig

    tok = WordTokenizer.from_words(DEFAULT_GRAMMAR.vocabulary())

    def model(seed: int):
        torch.manual_seed(seed)
        return hooks.load(GPT(GPTConfig(n_layer=2, d_model=16, n_head=2, vocab_size=len(tok), context_len=48)).eval(),
                          tokenizer=tok, name=f"s{seed}")

    cfg = probes.ProbeConfig(n_bootstrap=40, lambdas=(1e-1,), max_iter=100, refits=1, control=False)
    results = probes.probe(model(0), generate_sentences(60, seed=2), ["upos", "next_upos"], cfg, twin=False,
                           seeds=[model(1), model(2)])
    assert [m.role for m in results.models] == ["model", "seed", "seed"]
    v = results.seeds
    assert v is not None and v.n_seeds == 3 and v.expected == "depth"
    assert v.message.startswith("across 3 seeds (s0, s1, s2): ")
    data = results.to_dict()
    assert data["seeds"]["models"] == ["s0", "s1", "s2"]
    assert probes.results.ProbeResults.from_dict(data).seeds == v
