"""Comparison mode: our GPT and a (tiny, random) GPT-2 with a BPE tokenizer probed side by side;
random-init twins of every backend kind."""

import pytest
import torch

import hooks
import probes
from corpus import DEFAULT_GRAMMAR, WordTokenizer, generate_sentences, train_bpe_tokenizer
from gpt_model import GPT, GPTConfig


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    from transformers import GPT2Config, GPT2LMHeadModel

    out = tmp_path_factory.mktemp("tiny-gpt2")
    texts = [s.text for s in generate_sentences(300, seed=4)]
    tok = train_bpe_tokenizer(texts, 300, out)  # few merges: many words span several tokens
    tok.save_pretrained(out)
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=3, n_head=4,
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    GPT2LMHeadModel(cfg).save_pretrained(out)
    return out


def test_two_models_side_by_side(gpt2_dir):
    tok = WordTokenizer.from_words(DEFAULT_GRAMMAR.vocabulary())
    torch.manual_seed(3)
    ours = hooks.load(GPT(GPTConfig(n_layer=2, d_model=32, n_head=2, vocab_size=len(tok), context_len=48)),
                      tokenizer=tok, name="ours")
    sentences = generate_sentences(120, seed=8)
    cfg = probes.ProbeConfig(n_bootstrap=50, mdl=False, lambdas=(1e-1, 1e-2))
    res = probes.probe(ours, sentences, ["position", "upos", "subject_number"], cfg, twin=True,
                       compare=[f"gpt2:{gpt2_dir}"])
    probes.validate(res)
    probes.validate(res.to_dict())
    tags = [m.tag for m in res.models]
    roles = [m.role for m in res.models]
    assert roles == ["model", "random_init", "compare"] and tags[0] == "ours"
    gpt2 = res.models[2]
    assert gpt2.n_layer == 3 and len(gpt2.tasks["upos"].layers) == 4
    assert set(res.comparison["upos"]) == set(tags)
    c = res.comparison["upos"][tags[2]]
    assert c.n_layer == 3 and c.relative_expected_layer == pytest.approx(c.expected_layer / 3)
    # the same words, split and resamples for every model
    n = {m.tag: m.tasks["upos"].n_words for m in res.models}
    assert len({tuple(v.values()) for v in n.values()}) == 1
    report = probes.markdown_report(res)
    assert "## Side by side" in report and f"`{tags[2]}`" in report


def test_random_init_twins_of_every_backend(gpt2_dir):
    words = [["the", "dogs", "near", "the", "tables", "walk", "."]]
    for spec in (f"gpt2:{gpt2_dir}", f"nnsight:{gpt2_dir}"):
        base = hooks.load(spec)
        twin = probes.random_init_twin(base, seed=0)
        assert twin.metadata.n_layer == base.metadata.n_layer and twin.tokenizer is base.tokenizer
        a, b = base.run(words, logits=False)[0].resid, twin.run(words, logits=False)[0].resid
        assert a.shape == b.shape and not torch.allclose(a[1:], b[1:])
        again = probes.random_init_twin(base, seed=0).run(words, logits=False)[0].resid
        assert torch.allclose(again, b)  # a fixed seed gives the same twin
