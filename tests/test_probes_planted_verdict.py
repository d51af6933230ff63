"""Planted hierarchies (probes.planted): the generator writes what it says, and the expected-layer
definitions read planted depths as bench/bench_verdict.py measures at scale.

Tolerances below were checked on seeds 0–15 (0–7 for the per-layer check) at these sizes; each
test uses seed 0."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pytest
import torch

import probes
from probes import planted
from probes.planted import PlantedHierarchy, PlantedProperty


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _prop(**kw) -> PlantedProperty:
    return PlantedProperty(**({"name": "p", "level": "middle", "layer": 1} | kw))


@pytest.mark.parametrize("kw, field", [
    ({"name": "a b"}, "name"), ({"level": "deep"}, "level"), ({"layer": -1}, "layer"),
    ({"layer": 1.5}, "layer"), ({"n_classes": 1}, "n_classes"), ({"snr": float("nan")}, "snr"),
    ({"snr": -1.0}, "snr"), ({"lexical": 1.2}, "lexical"), ({"lexical": True}, "lexical"),
])
def test_property_errors_name_the_field(kw, field):
    with pytest.raises(ValueError, match=rf"PlantedProperty\.{field}\b"):
        _prop(**kw)


@pytest.mark.parametrize("kw, field", [
    ({"n_layer": 0}, "n_layer"), ({"n_sentences": 0}, "n_sentences"), ({"words_per_sentence": 2.0}, "words_per_sentence"),
    ({"vocab_size": 1}, "vocab_size"), ({"noise": 0.0}, "noise"), ({"word_snr": -2.0}, "word_snr"),
    ({"drift": -0.1}, "drift"), ({"d_model": 19}, "d_model"), ({"properties": ()}, "properties"),
    ({"properties": (_prop(layer=7),)}, "properties"), ({"properties": (_prop(), _prop())}, "properties"),
    ({"vocab_size": 3, "d_model": 64, "properties": (_prop(n_classes=4, lexical=0.5),)}, "vocab_size"),
])
def test_hierarchy_errors_name_the_field(kw, field):
    args = {"n_layer": 6, "d_model": 64, "vocab_size": 16, "properties": (_prop(),)} | kw
    with pytest.raises(ValueError, match=rf"PlantedHierarchy\.{field}\b"):
        PlantedHierarchy(**args)


def test_make_planted_is_deterministic_and_labels_are_lexical_as_specified():
    spec = PlantedHierarchy(n_layer=3, d_model=48, n_sentences=300, vocab_size=16,
                            properties=(_prop(name="lex", level="early", layer=0, lexical=1.0),
                                        _prop(name="half", layer=2, lexical=0.6)))
    sentences, X, tasks = planted.make_planted(spec, seed=3)
    again = planted.make_planted(spec, seed=3)[1]
    assert X.dtype == np.float32 and X.shape == (4, spec.n_words, 48)
    assert np.array_equal(X, again) and not np.array_equal(X, planted.make_planted(spec, seed=4)[1])
    assert [(t.name, t.level, t.kind) for t in tasks] == [("lex", "early", "categorical"),
                                                          ("half", "middle", "categorical")]
    assert len(sentences) == 300 and all(len(s) == 10 for s in sentences)
    by_form: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    for s in sentences:
        for w in s.words:
            for name in ("lex", "half"):
                by_form[name][w.form][w.misc[name]] += 1
    assert all(len(c) == 1 for c in by_form["lex"].values())  # lexical 1: the form fixes the label
    # lexical 0.6 of K = 4: the form's own class for 0.6 of the words, plus chance on the rest
    modal = sum(c.most_common(1)[0][1] for c in by_form["half"].values()) / spec.n_words
    assert modal == pytest.approx(0.6 + 0.4 / 4, abs=0.04)
    # a block without a write adds only its drift; a write adds more
    assert (X[1] - X[0]).std() == pytest.approx(spec.drift * spec.noise, rel=0.05)
    assert (X[2] - X[1]).std() > 1.5 * spec.drift * spec.noise


def test_written_accuracy_formula():
    assert planted.written_accuracy(2, 1.0) == pytest.approx(0.7602, abs=1e-3)  # Φ(1/√2)
    assert planted.written_accuracy(4, 0.0) == pytest.approx(0.25, abs=1e-6)


def test_probes_find_each_property_from_its_layer_on_at_the_planted_accuracy():
    """Per-layer probes: before its layer a property is read at its lexical share (layer-0
    accuracy = lexical + chance on the rest); from its layer on at the Bayes accuracy of its
    write, in every later layer (it persists)."""
    a = _prop(name="a", layer=2, snr=2.0)
    b = _prop(name="b", level="late", layer=4, lexical=0.6)
    spec = PlantedHierarchy(n_layer=5, d_model=48, n_sentences=300, vocab_size=16, properties=(a, b))
    sentences, X, tasks = planted.make_planted(spec, seed=0)
    cfg = probes.ProbeConfig(n_bootstrap=0, cumulative=False, mdl=False, control=False, threads=1)
    fit = probes.ProbeSuite(tasks, cfg).fit(X, sentences)
    for p in (a, b):
        acc = [x.score for x in fit.tasks[p.name].layers]
        before, written = planted.layer0_accuracy(p), planted.written_accuracy(p.n_classes, p.snr)
        assert all(abs(s - before) < 0.05 for s in acc[:p.layer]), (p.name, acc, before)
        assert abs(acc[p.layer] - written) < 0.06, (p.name, acc, written)
        assert all(s > written - 0.09 for s in acc[p.layer:]), (p.name, acc, written)
        mid = (before + written) / 2
        assert next(l for l, s in enumerate(acc) if s > mid) == p.layer


def _draw(build, seed: int = 0):
    spec = build(6, n_sentences=120, vocab_size=16, d_model=40)
    sentences, X, tasks = planted.make_planted(spec, seed)
    cfg = probes.ProbeConfig(seed=seed, n_bootstrap=200, control=False, mdl_control=False, threads=1)
    fit = probes.ProbeSuite(tasks, cfg).fit(X, sentences)
    return fit, {name: r.expected_layer for name, r in fit.tasks.items()}


def _middle_lt_late(verdict) -> float:
    """The fraction of resamples with middle < late."""
    return next(p.p_in_order for p in verdict.pairs if (p.lower, p.upper) == ("middle", "late"))


def test_ordered_draw_the_default_recovers_the_planted_order():
    fit, e = _draw(planted.ordered)  # early 0 (lexical 1), middle 3, late 5 (lexical 0.5)
    assert abs(e["middle"].mdl - 3) < 0.6 and abs(e["late"].mdl - 5) < 0.5
    assert abs(e["middle"].tenney - 3) < 0.4 and abs(e["late"].tenney - 5) < 0.7
    assert e["early"].tenney is None  # purely lexical: no gain after the embeddings
    assert e["early"].anchored == 0
    # anchored shrinks the half-lexical late property towards 0 (2.3–3.3 on seeds 0–15)
    assert e["late"].anchored < e["late"].tenney - 1.5
    # middle < late in every resample under both (seeds 0–15); the whole MDL verdict holds on 15 of
    # 16 seeds (the purely lexical early task's MDL depth is noise: 0 or 1 here), so it is not asserted
    assert _middle_lt_late(fit.verdicts["mdl"]) == 1.0 and _middle_lt_late(fit.verdicts["tenney"]) == 1.0
    # the default (depth axis): the purely lexical early task has no depth, so the early level is
    # not compared; middle < late is, with its effect size (planted: +2 layers)
    v = fit.verdict
    assert v.expected == "depth" and v.holds is True and v.p_order == 1.0
    assert v.compared == ["middle", "late"] and v.uninformative == ["early"] and v.undefined == ["early"]
    pair = v.pairs[0]
    assert (pair.lower, pair.upper) == ("middle", "late") and abs(pair.difference - 2) < 0.5
    assert pair.difference_ci.low > 1.0
    assert e["early"].depth is None and e["middle"].depth == e["middle"].mdl and e["late"].depth == e["late"].mdl
    # the lexical axis: early all lexical, middle none, late half (its lexical words)
    share = {name: fit.tasks[name].lexical_share.value for name in ("early", "middle", "late")}
    assert share["early"] > 0.95 and share["middle"] < 0.1 and 0.2 < share["late"] < 0.6
    assert fit.verdicts["tenney"].holds is True and fit.verdicts["tenney"].compared == ["middle", "late"]


def test_reversed_draw_anchored_calls_it_ordered_the_default_does_not():
    """Issue 20's failing case: middle written at 5 but 80 % lexical, late at 3."""
    fit, e = _draw(planted.reversed_)
    assert 4.0 < e["middle"].mdl < 5.3 and 4.7 < e["middle"].tenney < 6.0
    assert abs(e["late"].mdl - 3) < 0.5 and abs(e["late"].tenney - 3) < 0.4
    assert e["middle"].anchored < 2.0 < e["late"].anchored  # 0.5–1.4 and 2.6–3.0 on seeds 0–15
    assert fit.verdicts["anchored"].holds is True  # the false positive the issue reports
    assert fit.verdicts["mdl"].holds is False
    assert _middle_lt_late(fit.verdicts["mdl"]) == 0.0 and _middle_lt_late(fit.verdicts["tenney"]) == 0.0
    v = fit.verdict  # the default: middle − late ≈ 2 layers the wrong way
    assert v.expected == "depth" and v.holds is False and v.p_order == 0.0
    assert v.pairs[0].difference_ci.high < -1.0
    assert fit.verdicts["tenney"].holds is False


def test_flat_draw_the_default_does_not_call_it_ordered():
    """All three written at one layer, lexicality falling from early to late: anchored calls it
    ordered (the issue's second failure), the depth verdict finds no difference in depth."""
    fit, e = _draw(planted.flat)  # all at 3; lexical 0.5 / 0.25 / 0
    assert fit.verdicts["anchored"].holds is True
    v = fit.verdict
    assert v.expected == "depth" and v.holds is False and v.compared == ["early", "middle", "late"]
    for name in ("early", "middle", "late"):
        assert abs(e[name].depth - 3) < 0.5
    # every effect size is within half a layer of 0; middle < late is not in order
    assert all(abs(p.difference) < 0.5 for p in v.pairs)
    assert not next(p for p in v.pairs if (p.lower, p.upper) == ("middle", "late")).ok
    share = [fit.tasks[name].lexical_share.value for name in ("early", "middle", "late")]
    assert share[0] > share[1] > share[2]  # the lexical axis carries the difference instead
