"""hooks backends: our GPT (native / gpt2:), TransformerBridge (tl:) and nnsight agree, word →
token alignment, run directories, clear errors."""

import json
import shutil

import pytest
import torch
from hooks_fixtures import RARE, backends, gpt2_dir, make_sentences, one_torch_thread, word_run  # noqa: F401

import hooks
from hooks.tokenize import Encoding

SENTENCES = [["the", "dogs", "near", "Bartholomew", "run"], ["unbelievably", "a", "cat", "sees", "zyzzyva"],
             ["don't", "run"]]


def test_three_backends_agree_on_resid_patterns_and_logits(backends):
    runs = {kind: b.run(SENTENCES, patterns=True) for kind, b in backends.items()}
    for kind in ("tl", "nnsight"):
        for ours, theirs in zip(runs["gpt2"], runs[kind]):
            assert ours.encoding == theirs.encoding
            assert ours.resid.shape == theirs.resid.shape == (4, len(ours.encoding), 32)
            assert ours.patterns.shape == theirs.patterns.shape == (3, 4, len(ours.encoding), len(ours.encoding))
            torch.testing.assert_close(theirs.resid, ours.resid, atol=1e-5, rtol=0, msg=kind)
            torch.testing.assert_close(theirs.patterns, ours.patterns, atol=1e-5, rtol=0, msg=kind)
            torch.testing.assert_close(theirs.logits, ours.logits, atol=1e-5, rtol=0, msg=kind)


def test_metadata_is_uniform(backends):
    for kind, b in backends.items():
        meta = b.metadata
        assert (meta.n_layer, meta.n_head, meta.d_model, meta.vocab_size, meta.context_len) == (3, 4, 32, 300, 64)
        assert meta.backend == {"gpt2": "native", "tl": "tl", "nnsight": "nnsight"}[kind]
        assert meta.name == f"{kind}:tiny-gpt2"
        assert set(b.resid_names()) <= set(b.hook_names())
        assert hooks.ModelInfo.from_dict(meta.to_dict()) == meta
        old = {("d_vocab" if k == "vocab_size" else k): v for k, v in meta.to_dict().items()}  # earlier files
        assert hooks.ModelInfo.from_dict({**old, "lens": True}) == meta
    with pytest.raises(ValueError, match="lacks backend, source, n_layer, n_head, d_model, context_len:"):
        hooks.ModelInfo.from_dict({"name": "x", "d_vocab": 3})


def test_resid_layer0_is_embeddings_and_patterns_are_causal(backends):
    b = backends["gpt2"]
    run = b.run_one(SENTENCES[0], patterns=True)
    ids = torch.tensor(run.encoding.ids)
    emb = b.model.embed(ids) + b.model.pos_embed(torch.arange(len(ids)))
    torch.testing.assert_close(run.resid[0], emb.detach())
    torch.testing.assert_close(run.patterns.sum(-1), torch.ones(3, 4, len(ids)))
    assert torch.all(run.patterns.triu(1) == 0)


def test_word_alignment_on_multi_token_words(backends):
    b = backends["tl"]
    tok = b.tokenizer.tokenizer
    enc = b.encode(SENTENCES[1])
    assert enc.ids[0] == tok.bos_token_id  # <|endoftext|> first: index 0 is BOS, words start at 1
    assert enc.spans[0][0] == 1 and enc.spans[-1][1] == len(enc.ids)
    lengths = [end - start for start, end in enc.spans]
    assert max(lengths) > 1 and min(lengths) == 1  # multi-token and single-token words
    for i, (word, (start, end)) in enumerate(zip(enc.words, enc.spans)):
        text = tok.decode(list(enc.ids[start:end]))
        assert text == (word if i == 0 else " " + word)  # spaces before every word but the first
        if i:
            assert enc.spans[i - 1][1] == start  # contiguous, no token left out
    assert enc.last == [end - 1 for _, end in enc.spans]
    run = b.run_one(SENTENCES[1], logits=False)
    torch.testing.assert_close(run.word_resid(), run.resid[:, enc.last])
    assert run.word_resid("first").shape == (4, len(SENTENCES[1]), 32)


def test_rare_words_all_align(backends):
    b = backends["gpt2"]
    for word in RARE:
        enc = b.encode(["the", word, "runs"])
        assert b.tokenizer.tokenizer.decode(list(enc.ids[slice(*enc.spans[1])])) == " " + word


def test_padded_batch_equals_single_sentences(backends):
    for b in backends.values():
        batch = b.run(SENTENCES, patterns=True)
        for words, run in zip(SENTENCES, batch):
            alone = b.run_one(words, patterns=True)
            torch.testing.assert_close(run.resid, alone.resid, atol=1e-5, rtol=0)
            torch.testing.assert_close(run.patterns, alone.patterns, atol=1e-5, rtol=0)


def test_extra_hooks_by_pattern_and_output_dtype(backends):
    for kind, b in backends.items():
        run = b.run_one(SENTENCES[0], resid=False, logits=False, names="blocks.*.hook_mlp_out",
                        dtype=torch.float16)
        assert run.resid is None and run.logits is None
        assert sorted(run.activations) == [f"blocks.{i}.hook_mlp_out" for i in range(3)]
        assert all(x.dtype == torch.float16 and x.shape == (len(run.encoding), 32) for x in run.activations.values())
    nn_names = backends["nnsight"].hook_names()
    assert "blocks.0.attn.hook_pattern" in nn_names and "blocks.2.hook_attn_out" in nn_names
    with pytest.raises(ValueError, match="no hook matches"):
        backends["nnsight"].run_one(SENTENCES[0], names="blocks.0.attn.hook_q")


def test_mlp_and_attn_out_agree_across_backends(backends):
    names = ["blocks.1.hook_attn_out", "blocks.1.hook_mlp_out"]
    runs = {k: b.run_one(SENTENCES[0], resid=False, logits=False, names=names) for k, b in backends.items()}
    for kind in ("tl", "nnsight"):
        for n in names:
            torch.testing.assert_close(runs[kind].activations[n], runs["gpt2"].activations[n], atol=1e-5, rtol=0)


def test_word_run_directory_and_checkpoint(word_run):
    b = hooks.load(str(word_run))
    assert b.kind == "native" and b.metadata.name == "tiny-word"
    enc = b.encode(["the", "dog", "runs"])
    assert enc.ids[0] == 0 and enc.spans == ((1, 2), (2, 3), (3, 4))  # <bos> w1 w2 w3
    run = b.run_one(["the", "dog", "runs"], patterns=True)
    assert run.resid.shape == (3, 4, 32) and run.patterns.shape == (2, 4, 4, 4) and run.logits.shape[0] == 4
    ckpt = hooks.load(f"native:{word_run / 'checkpoints' / 'step_0000010'}")
    assert ckpt.metadata.name == "tiny-word@step_0000010"
    torch.testing.assert_close(ckpt.run_one(["the", "dog", "runs"]).resid, run.resid)
    with pytest.raises(ValueError, match="context length"):
        b.encode(["dog"] * 40)


def test_no_tokenizer_directory_gives_clear_error(gpt2_dir, tmp_path):
    bare = tmp_path / "no-tokenizer"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(gpt2_dir / name, bare / name)
    for prefix in ("tl", "nnsight", "gpt2"):
        with pytest.raises(ValueError, match="no usable tokenizer"):
            hooks.load(f"{prefix}:{bare}")


def test_empty_tokenizer_object_is_refused(gpt2_dir, tmp_path):
    from transformers import AutoTokenizer

    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(gpt2_dir / "config.json", bare / "config.json")
    empty = AutoTokenizer.from_pretrained(bare)  # transformers builds a 1-token tokenizer here
    with pytest.raises(ValueError, match="no usable tokenizer"):
        hooks.load(f"tl:{gpt2_dir}", tokenizer=empty)


def test_load_errors(tmp_path, word_run):
    with pytest.raises(FileNotFoundError, match="no run or checkpoint directory"):
        hooks.load(str(tmp_path / "missing"))
    broken = tmp_path / "run"
    shutil.copytree(word_run, broken)
    config = json.loads((broken / "config.json").read_text())
    del config["tokenizer"]
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="no 'tokenizer' section"):
        hooks.load(str(broken))
    with pytest.raises(TypeError, match="batch"):
        hooks.load(str(word_run)).run(["the", "dog"])


def test_run_accepts_sentences_and_encodings(backends):
    from corpus import Sentence, Word

    b = backends["gpt2"]
    sentence = Sentence([Word(i + 1, w) for i, w in enumerate(SENTENCES[2])])
    enc = b.encode(SENTENCES[2])
    assert isinstance(enc, Encoding)
    a, c = b.run([sentence, enc])
    torch.testing.assert_close(a.resid, c.resid)


def test_all_generated_sentences_fit_and_agree(backends):
    sentences = make_sentences(12, seed=5)
    ours = backends["gpt2"].run(sentences, logits=False)
    theirs = backends["nnsight"].run(sentences, logits=False)
    for a, c in zip(ours, theirs):
        torch.testing.assert_close(c.resid, a.resid, atol=1e-5, rtol=0)


def test_model_objects_wrap_into_backends(gpt2_dir, backends):
    from transformers import AutoTokenizer, GPT2LMHeadModel

    hf = GPT2LMHeadModel.from_pretrained(gpt2_dir)  # sdpa by default: the backend switches to eager
    wrapped = hooks.load(hf, tokenizer=AutoTokenizer.from_pretrained(gpt2_dir), name="wrapped")
    assert wrapped.kind == "nnsight" and wrapped.metadata.name == "wrapped"
    ours = backends["gpt2"].run(SENTENCES[:2], patterns=True)
    for a, c in zip(ours, wrapped.run(SENTENCES[:2], patterns=True)):
        torch.testing.assert_close(c.resid, a.resid, atol=1e-5, rtol=0)
        torch.testing.assert_close(c.patterns, a.patterns, atol=1e-5, rtol=0)
    native = hooks.load(backends["gpt2"].model, tokenizer=backends["gpt2"].tokenizer)
    assert native.kind == "native" and native.lock is backends["gpt2"].lock
    assert hooks.load(backends["tl"]) is backends["tl"]
    with pytest.raises(ValueError, match="tokenizer="):
        hooks.load(backends["gpt2"].model)


def test_bpe_run_directory(tmp_path):
    from corpus import train_bpe_tokenizer
    from gpt_model import GPT, GPTConfig
    from gpt_model.checkpoint import save_model

    run = tmp_path / "runs" / "tiny-bpe"
    tok = train_bpe_tokenizer([" ".join(s) for s in make_sentences(300, seed=3)], 300, run / "tokenizer")
    save_model(GPT(GPTConfig(n_layer=2, d_model=32, n_head=4, context_len=64, vocab_size=len(tok))), run,
               extra_config={"tokenizer": {"kind": "bpe", "path": "tokenizer"}})
    b = hooks.load(str(run))
    enc = b.encode(SENTENCES[1])
    assert enc.ids[0] == tok.convert_tokens_to_ids("<|endoftext|>") and max(e - s for s, e in enc.spans) > 1
    assert b.run_one(SENTENCES[1]).word_resid().shape == (3, len(SENTENCES[1]), 32)
