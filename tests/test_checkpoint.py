"""Weights in safetensors: round trip, atomic writes, clear errors on mismatch or corruption."""

import json
import re

import pytest
import torch

from gpt_model import GPT, GPTConfig
from gpt_model.checkpoint import load_model, load_weights, read_config, save_model, save_weights
from gpt_model.finite import NonFiniteWeightsError


def make(**kwargs) -> GPT:
    return GPT(GPTConfig(n_layer=2, d_model=32, n_head=4, context_len=16, vocab_size=50, **kwargs)).eval()


@pytest.mark.parametrize("tie", [True, False])
def test_round_trip_keeps_logits_and_tying(tmp_path, tie):
    model = make(tie_embeddings=tie, mlp="swiglu")
    save_model(model, tmp_path, {"tokenizer": {"kind": "word", "path": "tokenizer/vocab.json"}})
    loaded = load_model(tmp_path)
    tokens = torch.randint(0, 50, (2, 11))
    assert torch.equal(model(tokens), loaded(tokens))
    assert (loaded.unembed.weight is loaded.embed.weight) == tie
    config = read_config(tmp_path)
    assert config["tokenizer"]["kind"] == "word" and config["model"]["mlp"] == "swiglu"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]


def test_save_model_keeps_other_config_sections(tmp_path):
    model = make()
    save_model(model, tmp_path, {"train": {"lr": 1e-3}})
    save_model(model, tmp_path, {"data": {"seed": 3}})
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["train"] == {"lr": 1e-3} and config["data"] == {"seed": 3}


def test_mismatched_config_names_the_tensor(tmp_path):
    save_weights(make(), tmp_path / "model.safetensors")
    wider = GPT(GPTConfig(n_layer=2, d_model=64, n_head=4, context_len=16, vocab_size=50))
    with pytest.raises(ValueError, match=r"'blocks\.0\.\S+' has shape"):
        load_weights(wider, tmp_path / "model.safetensors")
    deeper = GPT(GPTConfig(n_layer=3, d_model=32, n_head=4, context_len=16, vocab_size=50))
    with pytest.raises(ValueError, match=r"missing tensor\(s\) blocks\.2\."):
        load_weights(deeper, tmp_path / "model.safetensors")
    shallower = GPT(GPTConfig(n_layer=1, d_model=32, n_head=4, context_len=16, vocab_size=50))
    with pytest.raises(ValueError, match=r"unexpected tensor 'blocks\.1\."):
        load_weights(shallower, tmp_path / "model.safetensors")


def test_corrupted_and_missing_files(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"\x00\x01not safetensors")
    with pytest.raises(ValueError, match="safetensors"):
        load_weights(make(), tmp_path / "model.safetensors")
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"config\.json:1:2: not valid JSON"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model": {"n_layer": 2, "n_head": 3, "d_model": 32}}))
    with pytest.raises(ValueError, match="n_head"):
        load_model(tmp_path)


def test_failed_write_leaves_previous_weights_intact(tmp_path, monkeypatch):
    model = make()
    path = tmp_path / "model.safetensors"
    save_weights(model, path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("gpt_model.checkpoint.save_file", crash)
    with pytest.raises(RuntimeError):
        save_weights(make(), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"], "no temporary file left"


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_load_model_refuses_non_finite_weights_naming_the_tensor(tmp_path, bad):
    model = make()
    name = "blocks.1.attn.out.weight"
    with torch.no_grad():
        model.blocks[1].attn.out.weight[2, 3] = bad
    save_model(model, tmp_path)
    with pytest.raises(NonFiniteWeightsError, match=rf"'{re.escape(name)}' holds 1 NaN/inf"):
        load_model(tmp_path)
    loaded = load_model(tmp_path, allow_nonfinite=True)  # to look at it anyway
    assert not torch.isfinite(dict(loaded.named_parameters())[name]).all()
