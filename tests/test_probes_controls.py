"""Controls on every result: sentence bootstrap intervals, control task / selectivity, baselines."""

import numpy as np
import pytest

import probes
from corpus import Sentence, Word
from probes.metrics import Bootstrap, interval


def test_bootstrap_statistics_equal_a_direct_recomputation():
    rng = np.random.default_rng(0)
    sent = np.repeat(np.arange(30), rng.integers(1, 8, size=30))
    correct = rng.random((len(sent), 3)) < 0.7
    y = rng.normal(size=len(sent))
    pred = y[:, None] + rng.normal(size=(len(sent), 2))
    boot = Bootstrap(30, n_resamples=5, seed=1)
    acc, acc_b = boot.accuracy(sent, correct)
    r2, r2_b = boot.r2(sent, y, pred)
    assert np.allclose(acc, correct.mean(axis=0))
    assert np.allclose(r2, 1 - ((pred - y[:, None]) ** 2).sum(0) / ((y - y.mean()) ** 2).sum())
    for b in range(5):
        rows = np.concatenate([np.repeat(np.nonzero(sent == s)[0][None], int(c), axis=0).ravel()
                               for s, c in enumerate(boot.counts[b]) if c > 0])
        assert np.allclose(acc_b[b], correct[rows].mean(axis=0))
        yr, pr = y[rows], pred[rows]
        assert np.allclose(r2_b[b], 1 - ((pr - yr[:, None]) ** 2).sum(0) / ((yr - yr.mean()) ** 2).sum())


def test_bootstrap_interval_covers_the_truth():
    """Sentences with their own difficulty (so words are correlated within a sentence): the 95%
    interval of the accuracy covers the population accuracy in about 95% of test sets."""
    rng = np.random.default_rng(42)
    truth, n_sets, n_sent = 0.7, 300, 80
    covered = 0
    for k in range(n_sets):
        lengths = rng.integers(3, 15, size=n_sent)
        q = rng.beta(7, 3, size=n_sent)  # per-sentence accuracy, mean 0.7, independent of length
        sent = np.repeat(np.arange(n_sent), lengths)
        correct = rng.random(len(sent)) < q[sent]
        _, acc_b = Bootstrap(n_sent, 400, seed=k).accuracy(sent, correct[:, None])
        lo, hi = interval(acc_b[:, 0])
        covered += lo <= truth <= hi
    assert 0.90 <= covered / n_sets <= 0.99, covered / n_sets


def test_word_level_resampling_would_be_too_narrow():
    # the reason to resample sentences: with correlated words, a word bootstrap undercovers
    rng = np.random.default_rng(3)
    n_sent = 60
    lengths = rng.integers(5, 15, size=n_sent)
    q = rng.beta(2, 2, size=n_sent)
    sent = np.repeat(np.arange(n_sent), lengths)
    correct = rng.random(len(sent)) < q[sent]
    _, by_sentence = Bootstrap(n_sent, 500, seed=0).accuracy(sent, correct[:, None])
    _, by_word = Bootstrap(len(sent), 500, seed=0).accuracy(np.arange(len(sent)), correct[:, None])
    width = lambda b: np.subtract(*interval(b[:, 0])[::-1])  # noqa: E731
    assert width(by_sentence) > 1.5 * width(by_word)


def _corpus(n_sent=600, seed=0):
    """Word types with a fixed tag (as UPOS mostly is), and features that encode the tag."""
    rng = np.random.default_rng(seed)
    tag_of = {f"w{i}": int(rng.integers(3)) for i in range(200)}
    sentences, tags, forms = [], [], []
    for _ in range(n_sent):
        words = []
        for i in range(int(rng.integers(4, 12))):
            form = f"w{rng.integers(200)}"
            words.append(Word(i + 1, form, misc={"tag": str(tag_of[form])}))
            tags.append(tag_of[form])
            forms.append(form)
        sentences.append(Sentence(words))
    return sentences, np.array(tags), forms


TAG = probes.Task("tag", "middle", "categorical", lambda s: [w.misc["tag"] for w in s.words])


def test_selectivity_separates_structure_from_word_memory():
    sentences, tags, forms = _corpus()
    rng = np.random.default_rng(1)
    n, d = len(tags), 12
    emb = {f"w{i}": rng.normal(size=d) for i in range(200)}
    lexical = np.stack([emb[f] for f in forms])  # word identity only (random per type)
    structured = rng.normal(size=(n, d))  # the tag itself, plus noise: no word identity
    structured[np.arange(n), tags] += 3.0
    X = np.stack([lexical, structured]).astype(np.float32)
    res = probes.ProbeSuite([TAG], probes.ProbeConfig(n_bootstrap=200, mdl=False, cumulative=False)).fit(X, sentences)
    lex, struct = res.tasks["tag"].layers
    # a type-level probe does as well on the control task as on the task: selectivity ≈ 0 ...
    assert abs(lex.selectivity) < 0.1
    # ... while features that encode the tag (not the word) are selective
    assert struct.score > 0.9 and struct.control.score < 0.6 and struct.selectivity > 0.35
    lo, hi = struct.selectivity_ci
    assert lo <= struct.selectivity <= hi and lo > 0.3
    # the majority baseline is the most frequent training tag
    base = res.tasks["tag"].baseline
    assert base.name == "majority" and 0.3 < base.score < 0.45


def test_every_result_carries_its_controls():
    sentences, tags, _ = _corpus(200)
    rng = np.random.default_rng(2)
    X = rng.normal(size=(3, len(tags), 6)).astype(np.float32)
    cfg = probes.ProbeConfig(n_bootstrap=50, lambdas=(1e-1, 1e-2))
    depth_like = probes.Task("len", "early", "ordinal", lambda s: [len(s.words)] * len(s.words))
    res = probes.ProbeSuite([TAG, depth_like], cfg).fit(X, sentences)
    t = res.tasks["tag"].to_dict()
    for x in t["layers"]:
        assert {"score", "ci", "control", "control_ci", "selectivity", "selectivity_ci", "mdl", "lambda"} <= set(x)
        assert x["ci"][0] <= x["score"] <= x["ci"][1]
    assert {"baseline", "layer0_score", "cumulative", "expected_layer", "peak_layer"} <= set(t)
    o = res.tasks["len"].to_dict()
    assert "control" not in o["layers"][0] and "spearman" in o["layers"][0]  # controls: categorical tasks
    assert o["baseline"]["name"] == "train mean"


def test_tasks_without_enough_words_are_skipped_not_fatal():
    sentences, tags, _ = _corpus(40)
    X = np.zeros((2, len(tags), 4), dtype=np.float32)
    rare = probes.Task("rare", "late", "categorical",
                       lambda s: ["x" if s.words[0].form == "w1" and i == 0 else None for i in range(len(s.words))])
    res = probes.ProbeSuite([TAG, rare], probes.ProbeConfig(n_bootstrap=20, mdl=False)).fit(X, sentences)
    assert "too few" in res.tasks["rare"].skipped
    assert res.verdict.holds is None and res.verdict.status == "incomplete"


def test_config_validation():
    with pytest.raises(ValueError, match="split"):
        probes.ProbeConfig(split=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="expected"):
        probes.ProbeConfig(expected="mean")
    with pytest.raises(ValueError, match="lambdas"):
        probes.ProbeConfig(lambdas=(0.0,))
