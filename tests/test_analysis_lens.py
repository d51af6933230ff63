"""Logit lens against a hand computation and against a real GPT's own output."""

import math

import numpy as np
import pytest
import torch

from app.analysis import logit_lens, native_unembed


def test_logit_lens_by_hand():
    # d = V = 2 and unembed = identity: the stream *is* the logits
    resid = np.array([[[0.0, 1.0]], [[math.log(3.0), 0.0]]])  # [2 layers, 1 position, 2]
    lens = logit_lens(resid, lambda x: x, k=2)
    p = np.array([0.75, 0.25])  # softmax(log 3, 0)
    p0 = np.array([1.0, math.e]) / (1 + math.e)  # softmax(0, 1)
    assert lens.kl[0, 0] == pytest.approx(float((p * np.log(p / p0)).sum()))
    assert lens.kl[1, 0] == pytest.approx(0.0)
    assert lens.agree[:, 0].tolist() == [False, True]
    assert lens.top_ids[0, 0].tolist() == [1, 0]
    assert lens.top_probs[1, 0] == pytest.approx([0.75, 0.25])
    assert lens.kl_mean.shape == (2,) and lens.agree_mean.tolist() == [0.0, 1.0]


def test_logit_lens_with_reference_logits():
    resid = np.zeros((2, 3, 2))  # uniform at every layer
    final = np.tile([math.log(3.0), 0.0], (3, 1))
    lens = logit_lens(resid, lambda x: x, final_logits=final)
    expected = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert lens.kl == pytest.approx(np.full((2, 3), expected))


def test_logit_lens_last_layer_is_the_model_output():
    import hooks
    from corpus import WordTokenizer
    from gpt_model import GPT, GPTConfig

    tok = WordTokenizer(["the", "dog", "dogs", "barks", "bark", "."])
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=3, d_model=32, n_head=4, context_len=16, vocab_size=len(tok)))
    backend = hooks.load(model, tokenizer=tok)
    run = backend.run_one(["the", "dogs", "bark", "."])
    with backend.lock:
        lens = logit_lens(run.resid, native_unembed(model), final_logits=run.logits, k=3)
    assert lens.kl.shape == (4, 5)
    assert lens.kl[-1] == pytest.approx(np.zeros(5), abs=1e-6)
    assert lens.agree[-1].all()
    assert (lens.final_ids == run.logits.argmax(-1).numpy()).all()
    assert (lens.kl[:-1] > 0).all()
