"""GPT-2 weight import/export against tiny random transformers GPT-2s (no downloads).

HF models are built with attn_implementation="eager" (needed for output_attentions) unless a test
says "sdpa"; both give the same logits as ours within 1e-4 in fp32.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import GPT2Config, GPT2LMHeadModel, GPT2Model

from gpt_model import GPT, GPTConfig
from gpt_model.finite import NonFiniteWeightsError
from gpt_model.gpt2_weights import load_gpt2, save_hf_gpt2

SHAPES = {  # name → GPT2Config kwargs
    "1x32x4": dict(n_layer=1, n_embd=32, n_head=4),
    "3x48x6": dict(n_layer=3, n_embd=48, n_head=6, n_inner=80, layer_norm_epsilon=1e-6),
}
ATOL = 1e-4


def hf_gpt2(shape: str, attn: str = "eager", seed: int = 0, cls: type = GPT2LMHeadModel):
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=101, n_positions=32, bos_token_id=None, eos_token_id=None,
                     attn_implementation=attn, **SHAPES[shape])
    model = cls(cfg).eval()
    with torch.no_grad():  # HF zero-inits biases and sets LN to identity: randomise everything
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def tokens(seed: int = 1, batch: int = 2, length: int = 17) -> torch.Tensor:
    return torch.randint(0, 101, (batch, length), generator=torch.Generator().manual_seed(seed))


def hf_logits(model, toks: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        if isinstance(model, GPT2Model):
            return model(toks).last_hidden_state @ model.wte.weight.T
        return model(toks).logits


def our_logits(model: GPT, toks: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(toks)


def save_legacy_bin(hf: GPT2LMHeadModel, directory: Path) -> None:
    """The layout of OpenAI's original upload: no "transformer." prefix, mask buffers, a .bin."""
    directory.mkdir()
    hf.config.save_pretrained(directory)
    state = {k.removeprefix("transformer."): v.clone() for k, v in hf.state_dict().items()}
    n = hf.config.n_positions
    for i in range(hf.config.n_layer):
        state[f"h.{i}.attn.bias"] = torch.tril(torch.ones(n, n)).view(1, 1, n, n)
        state[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    torch.save(state, directory / "pytorch_model.bin")


# ------------------------------------------------------------------ loading
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("shape", SHAPES)
def test_load_from_object_matches_hf(shape: str, attn: str) -> None:
    hf = hf_gpt2(shape, attn)
    model = load_gpt2(hf)
    assert model.cfg.d_mlp == hf.config.n_inner and model.cfg.norm_eps == hf.config.layer_norm_epsilon
    assert model.unembed.weight is model.embed.weight and not model.training
    torch.testing.assert_close(our_logits(model, tokens()), hf_logits(hf, tokens()), atol=ATOL, rtol=0)


def test_load_from_gpt2model_object() -> None:
    hf = hf_gpt2("3x48x6", cls=GPT2Model)
    torch.testing.assert_close(our_logits(load_gpt2(hf), tokens()), hf_logits(hf, tokens()), atol=ATOL, rtol=0)


@pytest.mark.parametrize("shape", SHAPES)
def test_load_from_safetensors_dir(shape: str, tmp_path: Path) -> None:
    hf = hf_gpt2(shape)
    hf.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    for source in (tmp_path, str(tmp_path)):
        model = load_gpt2(source)
        torch.testing.assert_close(our_logits(model, tokens()), hf_logits(hf, tokens()), atol=ATOL, rtol=0)


def test_load_from_legacy_pytorch_bin(tmp_path: Path) -> None:
    hf = hf_gpt2("3x48x6")
    save_legacy_bin(hf, tmp_path / "m")
    model = load_gpt2(tmp_path / "m")
    torch.testing.assert_close(our_logits(model, tokens()), hf_logits(hf, tokens()), atol=ATOL, rtol=0)


class Payload:
    """Unpickling this runs a shell command that leaves a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_pytorch_bin_is_never_unpickled(tmp_path: Path) -> None:
    hf = hf_gpt2("1x32x4")
    hf.config.save_pretrained(tmp_path)
    marker = tmp_path / "payload-ran"
    torch.save({"payload": Payload(marker)}, tmp_path / "pytorch_model.bin")
    with pytest.raises(ValueError, match="pytorch_model.bin: not a readable .* refusing to unpickle") as info:
        load_gpt2(tmp_path)
    assert "\n" not in str(info.value) and "weights_only" not in str(info.value)
    assert "posix.system" in str(info.value)  # what it would have run, named
    assert not marker.exists()


@pytest.mark.parametrize("name", ["model.safetensors", "pytorch_model.bin"])
def test_truncated_or_garbage_weights_name_the_file(name: str, tmp_path: Path) -> None:
    hf = hf_gpt2("1x32x4")
    hf.save_pretrained(tmp_path)
    if name == "pytorch_model.bin":
        torch.save(load_file(str(tmp_path / "model.safetensors")), tmp_path / name)
        (tmp_path / "model.safetensors").unlink()
    path = tmp_path / name
    data = path.read_bytes()
    for damaged in (data[: len(data) // 2], b"garbage" * 50, b""):
        path.write_bytes(damaged)
        with pytest.raises(ValueError, match=f"{path}: not a readable") as info:
            load_gpt2(tmp_path)
        assert "\n" not in str(info.value)


def test_nonfinite_weights_are_refused_naming_the_tensor(tmp_path: Path) -> None:
    hf = hf_gpt2("1x32x4")
    with torch.no_grad():
        hf.transformer.h[0].attn.c_proj.weight[1, 2] = float("inf")
    with pytest.raises(NonFiniteWeightsError, match=r"transformer\.h\.0\.attn\.c_proj\.weight"):
        load_gpt2(hf)
    hf.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=rf"{tmp_path}.*h\.0\.attn\.c_proj\.weight.* 1 NaN/inf"):
        load_gpt2(tmp_path)
    model = load_gpt2(tmp_path, allow_nonfinite=True)
    assert torch.isinf(model.blocks[0].attn.out.weight).sum() == 1


def test_load_sharded_safetensors(tmp_path: Path) -> None:
    hf = hf_gpt2("3x48x6")
    hf.config.save_pretrained(tmp_path)
    state = {k: v.clone() for k, v in hf.state_dict().items() if k != "lm_head.weight"}
    keys = sorted(state)
    weight_map = {}
    for n, part in enumerate((keys[::2], keys[1::2])):
        name = f"model-0000{n + 1}-of-00002.safetensors"
        save_file({k: state[k] for k in part}, str(tmp_path / name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, name))
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    model = load_gpt2(tmp_path)
    torch.testing.assert_close(our_logits(model, tokens()), hf_logits(hf, tokens()), atol=ATOL, rtol=0)


def test_dtype_and_device() -> None:
    model = load_gpt2(hf_gpt2("1x32x4"), dtype=torch.float64, device="cpu")
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    assert model.unembed.weight is model.embed.weight  # still tied after assign-loading


def test_hub_name_from_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hub name resolves through the HF cache layout, offline."""
    import huggingface_hub.constants

    repo = tmp_path / "hub" / "models--stratascope-test--tiny-gpt2"
    commit = "0123456789abcdef0123456789abcdef01234567"
    hf = hf_gpt2("1x32x4")
    hf.save_pretrained(repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    model = load_gpt2("stratascope-test/tiny-gpt2", local_files_only=True)
    torch.testing.assert_close(our_logits(model, tokens()), hf_logits(hf, tokens()), atol=ATOL, rtol=0)


# ------------------------------------------------------------------ hooks vs HF internals
def test_hooks_match_hf_hidden_states_and_attentions() -> None:
    hf = hf_gpt2("3x48x6", attn="eager")
    model = load_gpt2(hf)
    toks = tokens()
    with torch.no_grad():
        out = hf(toks, output_hidden_states=True, output_attentions=True)
        logits, cache = model.run_with_cache(toks)
    n = model.cfg.n_layer
    hidden, attentions = out.hidden_states, out.attentions
    assert len(hidden) == n + 1 and len(attentions) == n
    torch.testing.assert_close(cache["hook_embed"] + cache["hook_pos_embed"], hidden[0], atol=ATOL, rtol=0)
    for i in range(n - 1):
        torch.testing.assert_close(cache[f"blocks.{i}.hook_resid_post"], hidden[i + 1], atol=ATOL, rtol=0)
    # HF's last hidden state is after ln_f: our final norm's output, not the last resid_post.
    torch.testing.assert_close(cache["ln_final.hook_normalized"], hidden[n], atol=ATOL, rtol=0)
    assert not torch.allclose(cache[f"blocks.{n - 1}.hook_resid_post"], hidden[n], atol=1e-2)
    for i in range(n):
        torch.testing.assert_close(cache[f"blocks.{i}.attn.hook_pattern"], attentions[i], atol=ATOL, rtol=0)
    torch.testing.assert_close(logits, out.logits, atol=ATOL, rtol=0)


# ------------------------------------------------------------------ export
def random_gpt(**overrides) -> GPT:
    torch.manual_seed(3)
    cfg = GPTConfig(**{**dict(n_layer=2, d_model=32, n_head=4, context_len=32, vocab_size=101), **overrides})
    model = GPT(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


@pytest.mark.parametrize("overrides", [{}, dict(residual="scaled_init", d_mlp=72, norm_eps=1e-6),
                                       dict(tie_embeddings=False)])
def test_save_round_trip(overrides: dict, tmp_path: Path) -> None:
    ours = random_gpt(**overrides)
    save_hf_gpt2(ours, tmp_path)
    hf = GPT2LMHeadModel.from_pretrained(tmp_path, attn_implementation="eager").eval()
    torch.testing.assert_close(hf_logits(hf, tokens()), our_logits(ours, tokens()), atol=ATOL, rtol=0)
    back = load_gpt2(tmp_path)
    assert back.cfg.tie_embeddings == ours.cfg.tie_embeddings
    back_state, our_state = back.state_dict(), ours.state_dict()
    assert back_state.keys() == our_state.keys()
    for key, value in our_state.items():
        torch.testing.assert_close(back_state[key], value, atol=0, rtol=0, msg=key)


def test_load_then_save_is_identity(tmp_path: Path) -> None:
    hf = hf_gpt2("3x48x6")
    save_hf_gpt2(load_gpt2(hf), tmp_path)
    saved = load_file(str(tmp_path / "model.safetensors"))
    expected = {k: v for k, v in hf.state_dict().items() if k != "lm_head.weight"}
    assert saved.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(saved[key], value, atol=0, rtol=0, msg=key)


@pytest.mark.parametrize("field, value", [("norm", "rmsnorm"), ("ln_placement", "post"),
                                          ("mlp", "swiglu"), ("bias", False)])
def test_save_refuses_non_gpt2_variants(field: str, value, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=f"GPTConfig.{field}="):
        save_hf_gpt2(random_gpt(**{field: value}), tmp_path)
    assert not (tmp_path / "model.safetensors").exists()


# ------------------------------------------------------------------ errors
def test_wrong_shape_names_the_tensor(tmp_path: Path) -> None:
    hf = hf_gpt2("3x48x6")
    hf.save_pretrained(tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    state["transformer.h.1.attn.c_attn.weight"] = torch.zeros(48, 72)
    save_file(state, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"transformer\.h\.1\.attn\.c_attn\.weight: expected shape "
                                         r"\(48, 144\), got \(48, 72\)"):
        load_gpt2(tmp_path)


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.pop("transformer.h.0.mlp.c_fc.bias"), r"missing tensor\(s\) h\.0\.mlp\.c_fc\.bias"),
    (lambda s: s.update({"transformer.h.0.attn.q_proj.weight": torch.zeros(1)}),
     r"unexpected tensor\(s\).*transformer\.h\.0\.attn\.q_proj\.weight"),
    (lambda s: s.update({"transformer.h.7.ln_1.weight": torch.zeros(32)}), r"unexpected.*h\.7\.ln_1"),
])
def test_missing_or_extra_tensors(edit, message: str, tmp_path: Path) -> None:
    hf = hf_gpt2("1x32x4")
    hf.save_pretrained(tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    edit(state)
    save_file(state, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match=message):
        load_gpt2(tmp_path)


@pytest.mark.parametrize("change, message", [
    ({"model_type": "llama"}, "model_type 'llama'"),
    ({"activation_function": "relu"}, "activation_function 'relu'"),
    ({"activation_function": "gelu"}, "activation_function 'gelu'"),
    ({"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx"),
    ({"scale_attn_weights": False}, "scale_attn_weights"),
])
def test_unsupported_configs(change: dict, message: str, tmp_path: Path) -> None:
    hf_gpt2("1x32x4").save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(ValueError, match=message):
        load_gpt2(tmp_path)


def test_missing_directory(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    for source in (missing, str(missing)):
        with pytest.raises(FileNotFoundError, match=str(missing)):
            load_gpt2(source)


def test_directory_without_weights(tmp_path: Path) -> None:
    hf_gpt2("1x32x4").config.save_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="no GPT-2 weights"):
        load_gpt2(tmp_path)


def test_unknown_hub_name_fails_fast_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="stratascope-test/definitely-missing"):
        load_gpt2("stratascope-test/definitely-missing", local_files_only=True)


def test_wrong_source_types(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        load_gpt2(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        save_hf_gpt2(hf_gpt2("1x32x4"), tmp_path)  # type: ignore[arg-type]
