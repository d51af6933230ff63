"""Validation of the instrument: planted features are found where and as well as they should be;
a random-init GPT shows word identity but no selective syntax."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

import probes
from corpus import DEFAULT_GRAMMAR, Sentence, Word, WordTokenizer, generate_sentences
from gpt_model import GPT, GPTConfig



def bayes_accuracy(K: int, snr: float) -> float:
    """Equal priors, class means snr·σ·e_k (orthonormal), isotropic noise σ: the Bayes rule picks
    the largest x·e_k, correct with probability ∫ φ(z) Φ(z + snr)^(K−1) dz."""
    z = np.linspace(-10, 10, 20001)
    return float(np.trapezoid(norm.pdf(z) * norm.cdf(z + snr) ** (K - 1), z))


def test_bayes_accuracy_formula():
    assert bayes_accuracy(2, 1.0) == pytest.approx(norm.cdf(1 / math.sqrt(2)), abs=1e-6)
    assert bayes_accuracy(4, 0.0) == pytest.approx(0.25, abs=1e-6)


def _planted(n_sent=800, n_words=10, layers=5, k=3, K=4, snr=2.0, d=16, seed=0):
    """Sentences whose word i carries a random class y (MISC) and a random form; features where
    y is linearly encoded at layer k only (class mean snr·e_y, unit Gaussian noise), and an
    ordinal value v = position-independent integer in 0..9 encoded at layer k − 1."""
    rng = np.random.default_rng(seed)
    sentences, ys, vs = [], [], []
    for _ in range(n_sent):
        words = []
        for i in range(n_words):
            y, v = int(rng.integers(K)), int(rng.integers(10))
            words.append(Word(i + 1, f"w{rng.integers(300)}", misc={"y": str(y), "v": str(v)}))
            ys.append(y)
            vs.append(v)
        sentences.append(Sentence(words))
    ys, vs = np.array(ys), np.array(vs)
    X = rng.normal(size=(layers, len(ys), d)).astype(np.float32)
    X[k, np.arange(len(ys)), ys] += snr
    X[k - 1, :, 8] += 0.5 * vs  # R² = 0.25·var(v) / (0.25·var(v) + 1)
    return sentences, X, vs


PLANTED = probes.Task("planted", "middle", "categorical", lambda s: [w.misc["y"] for w in s.words])
PLANTED_ORD = probes.Task("planted_ord", "early", "ordinal", lambda s: [int(w.misc["v"]) for w in s.words])


def test_planted_feature_found_at_its_layer_with_bayes_accuracy():
    K, snr, k = 4, 2.0, 3
    sentences, X, vs = _planted(K=K, snr=snr, k=k)
    cfg = probes.ProbeConfig(n_bootstrap=300, lambdas=(1e-1, 1e-2, 1e-3))
    res = probes.ProbeSuite([PLANTED, PLANTED_ORD], cfg).fit(X, sentences)
    r = res.tasks["planted"]
    scores = [x.score for x in r.layers]
    bayes = bayes_accuracy(K, snr)  # ≈ 0.80
    assert r.peak_layer == k
    assert abs(scores[k] - bayes) < 0.03, (scores[k], bayes)
    lo, hi = r.layers[k].ci
    assert lo - 0.01 <= bayes <= hi + 0.01
    for l, s in enumerate(scores):
        if l != k:
            assert abs(s - 1 / K) < 0.04, (l, s)
    # control: labels by word form, unrelated to the features → selectivity ≈ accuracy − chance
    assert r.layers[k].selectivity > 0.4
    assert abs(r.layers[0].selectivity) < 0.06
    # MDL: the planted layer compresses, the others do not
    comp = [x.mdl.compression for x in r.layers]
    assert comp[k] > 1.3 and max(c for l, c in enumerate(comp) if l != k) < 1.02
    # expected layer: all the gain of the cumulative probe comes at layer k
    e = r.expected_layer
    assert abs(e.tenney - k) < 0.35 and abs(e.anchored - k) < 0.35
    assert r.cumulative[k].score == pytest.approx(scores[k], abs=0.02)
    # ordinal: R² of the best linear predictor, 0.25·var(v) / (0.25·var(v) + 1)
    o = res.tasks["planted_ord"]
    var = float(np.var(vs))
    r2 = 0.25 * var / (0.25 * var + 1)
    assert o.peak_layer == k - 1
    assert abs(o.layers[k - 1].score - r2) < 0.03
    assert abs(o.expected_layer.tenney - (k - 1)) < 0.2
    assert all(abs(x.score) < 0.02 for x in o.layers if x.layer != k - 1)
    assert o.layers[k - 1].spearman > 0.8


def test_features_must_match_the_words():
    sentences, X, _ = _planted(n_sent=20)
    with pytest.raises(ValueError, match="word rows"):
        probes.ProbeSuite([PLANTED]).fit(X[:, :-1], sentences)


def test_random_init_gpt_shows_words_but_no_selective_syntax():
    tok = WordTokenizer.from_words(DEFAULT_GRAMMAR.vocabulary())
    torch.manual_seed(7)
    model = GPT(GPTConfig(n_layer=2, d_model=64, n_head=4, vocab_size=len(tok), context_len=64)).eval()
    import hooks

    backend = hooks.load(model, tokenizer=tok, name="tiny")
    twin = probes.random_init_twin(backend, seed=0)
    assert twin.metadata.name == "tiny+random-init"
    assert not torch.equal(twin.model.embed.weight, model.embed.weight) if hasattr(model, "embed") else True
    sentences = generate_sentences(300, seed=11)
    feats = probes.extract(twin, sentences)
    assert feats.shape == (3, sum(len(s) for s in sentences), 64)
    syntax = ["upos", "phrase", "subject_number", "next_upos"]
    cfg = probes.ProbeConfig(n_bootstrap=100, mdl=False, cumulative=False, lambdas=(1e-1, 1e-2, 1e-3))
    res = probes.ProbeSuite(["word"] + syntax, cfg).fit(feats, sentences)
    word = res.tasks["word"]
    assert min(x.score for x in word.layers) > 0.9  # word identity stays decodable
    for name in syntax:
        sel = [x.selectivity for x in res.tasks[name].layers]
        assert max(sel) < 0.05, (name, sel)  # nothing beyond what the word itself gives
    assert abs(max(x.selectivity for x in res.tasks["upos"].layers)) < 0.1
