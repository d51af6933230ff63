"""hooks.interventions: caching with selection/device/dtype, ablations, patching, steering —
each tested by its effect on the logits."""

import re

import pytest
import torch
from hooks_fixtures import backends, gpt2_dir, one_torch_thread  # noqa: F401

import hooks
from gpt_model import GPT, GPTConfig


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GPT(GPTConfig(n_layer=4, d_model=32, n_head=4, context_len=16, vocab_size=50)).eval()


@pytest.fixture(scope="module")
def tokens():
    return torch.randint(0, 50, (2, 10), generator=torch.Generator().manual_seed(1))


def plain(model, tokens):
    with torch.no_grad():
        return model(tokens)


def test_cache_selects_by_name_glob_regex_predicate(model, tokens):
    logits, cache = hooks.cache_activations(model, tokens, "blocks.*.hook_resid_post")
    assert sorted(cache.keys()) == [f"blocks.{i}.hook_resid_post" for i in range(4)]
    torch.testing.assert_close(logits, plain(model, tokens))
    _, cache = hooks.cache_activations(model, tokens, re.compile(r"blocks\.[12]\.attn\.hook_(q|k)"))
    assert sorted(cache.keys()) == ["blocks.1.attn.hook_k", "blocks.1.attn.hook_q",
                                    "blocks.2.attn.hook_k", "blocks.2.attn.hook_q"]
    _, cache = hooks.cache_activations(model, tokens, "re:blocks\\.0\\.hook_.*_out")
    assert sorted(cache.keys()) == ["blocks.0.hook_attn_out", "blocks.0.hook_mlp_out"]
    _, cache = hooks.cache_activations(model, tokens, ["hook_embed", "blocks.3.*pattern"])
    assert sorted(cache.keys()) == ["blocks.3.attn.hook_pattern", "hook_embed"]
    _, cache = hooks.cache_activations(model, tokens, lambda n: n.endswith("ln_final.hook_normalized"))
    assert list(cache.keys()) == ["ln_final.hook_normalized"]
    with pytest.raises(ValueError, match="no hook matches"):
        hooks.cache_activations(model, tokens, "blocks.9.hook_resid_post")


def test_cache_device_dtype_and_activation_cache_helpers(model, tokens):
    _, full = hooks.cache_activations(model, tokens, "blocks.*.hook_resid_post")
    _, half = hooks.cache_activations(model, tokens, "blocks.*.hook_resid_post", device="cpu", dtype=torch.float16)
    x = half["blocks.2.hook_resid_post"]
    assert x.dtype == torch.float16 and x.device.type == "cpu"
    torch.testing.assert_close(x.float(), full["blocks.2.hook_resid_post"], atol=2e-3, rtol=2e-3)
    assert torch.equal(half["resid_post", 2], x)  # TransformerLens shorthand on an ActivationCache


def test_zero_ablating_later_blocks_equals_truncation(model, tokens):
    _, cache = hooks.cache_activations(model, tokens, "blocks.*.hook_resid_post")
    for k in range(3):
        logits = hooks.ablate_block(model, tokens, range(k + 1, 4))
        with torch.no_grad():
            truncated = model.unembed(model.ln_final(cache[f"blocks.{k}.hook_resid_post"]))
        torch.testing.assert_close(logits, truncated, atol=1e-5, rtol=1e-5)
        assert not torch.allclose(logits, plain(model, tokens))


def test_zero_ablating_all_heads_leaves_the_output_bias(model, tokens):
    layer = 1
    ablated = hooks.ablate_head(model, tokens, layer, range(4))
    bias = model.blocks[layer].attn.out.bias.detach()
    manual = hooks.run_with_hooks(model, tokens, [(f"blocks.{layer}.hook_attn_out",
                                                   lambda x, hook: torch.zeros_like(x) + bias)])
    torch.testing.assert_close(ablated, manual)
    one = hooks.ablate_head(model, tokens, layer, 2)
    assert not torch.allclose(one, plain(model, tokens)) and not torch.allclose(one, ablated)


def test_mean_ablation_of_a_head_uses_the_reference_mean(model, tokens):
    reference = torch.randint(0, 50, (3, 10), generator=torch.Generator().manual_seed(7))
    _, cache = hooks.cache_activations(model, reference, "blocks.2.attn.hook_z")
    mean = cache["blocks.2.attn.hook_z"][:, :, 3].mean((0, 1))  # [dh]

    def manual_hook(z, hook):
        z = z.clone()
        z[:, :, 3] = mean
        return z

    manual = hooks.run_with_hooks(model, tokens, [("blocks.2.attn.hook_z", manual_hook)])
    ablated = hooks.ablate_head(model, tokens, 2, 3, mode="mean", reference=reference)
    torch.testing.assert_close(ablated, manual)
    with pytest.raises(ValueError, match="head must be"):
        hooks.ablate_head(model, tokens, 2, 4)


def test_mlp_ablation_zero_and_mean(model, tokens):
    zero = hooks.ablate_mlp(model, tokens, 0)
    manual = hooks.run_with_hooks(model, tokens, [("blocks.0.hook_mlp_out", lambda x, hook: x * 0)])
    torch.testing.assert_close(zero, manual)
    _, cache = hooks.cache_activations(model, tokens, "blocks.0.hook_mlp_out")
    mean = cache["blocks.0.hook_mlp_out"].mean((0, 1))
    manual = hooks.run_with_hooks(model, tokens, [("blocks.0.hook_mlp_out", lambda x, hook: x * 0 + mean)])
    torch.testing.assert_close(hooks.ablate_mlp(model, tokens, 0, mode="mean"), manual)
    with pytest.raises(ValueError, match="mode"):
        hooks.ablate_mlp(model, tokens, 0, mode="resample")


def test_patching_clean_into_clean_is_a_no_op(model, tokens):
    clean = plain(model, tokens)
    for hook in ("resid_pre", "resid_post", "attn_out", "mlp_out"):
        for position in (0, 4, 9):
            patched = hooks.patch_activation(model, tokens, tokens, 2, position, hook=hook)
            torch.testing.assert_close(patched, clean, atol=0, rtol=0)


def test_patching_changes_only_later_positions(model, tokens):
    corrupted = tokens.clone()
    corrupted[:, 3] = (corrupted[:, 3] + 1) % 50  # corrupt token 3
    corrupted_logits = plain(model, corrupted)
    clean_logits = plain(model, tokens)
    for position in (3, 6):
        patched = hooks.patch_activation(model, tokens, corrupted, 1, position)
        torch.testing.assert_close(patched[:, :position], corrupted_logits[:, :position], atol=0, rtol=0)
        assert not torch.allclose(patched[:, position], corrupted_logits[:, position])
    # patching the last block's output at a position restores the clean logits there exactly
    patched = hooks.patch_activation(model, tokens, corrupted, 3, 5)
    torch.testing.assert_close(patched[:, 5], clean_logits[:, 5], atol=1e-6, rtol=0)
    # patching the corrupted token's residual stream at layer 0 restores every later position
    patched = hooks.patch_activation(model, tokens, corrupted, 0, 3, hook="resid_pre")
    torch.testing.assert_close(patched, clean_logits, atol=1e-5, rtol=0)
    # one head's z
    patched = hooks.patch_activation(model, tokens, corrupted, 2, 6, hook="z", head=1)
    torch.testing.assert_close(patched[:, :6], corrupted_logits[:, :6], atol=0, rtol=0)
    assert not torch.allclose(patched[:, 6], corrupted_logits[:, 6])


def test_steering_vector_adds_to_the_residual_stream(model, tokens):
    vector = torch.randn(32, generator=torch.Generator().manual_seed(3))
    _, cache = hooks.cache_activations(model, tokens, "blocks.3.hook_resid_post")
    steered = hooks.add_steering_vector(model, tokens, vector, 3, scale=2.0)
    with torch.no_grad():
        expected = model.unembed(model.ln_final(cache["blocks.3.hook_resid_post"] + 2.0 * vector))
    torch.testing.assert_close(steered, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(hooks.add_steering_vector(model, tokens, vector, 1, scale=0.0), plain(model, tokens))
    partial = hooks.add_steering_vector(model, tokens, vector, 1, positions=[5])
    clean = plain(model, tokens)
    torch.testing.assert_close(partial[:, :5], clean[:, :5], atol=0, rtol=0)
    assert not torch.allclose(partial[:, 5:], clean[:, 5:])


def test_hooks_are_removed_after_interventions(model, tokens):
    hooks.ablate_block(model, tokens, [1, 2])
    hooks.patch_activation(model, tokens, tokens, 1, 2)
    assert all(not hp.fwd_hooks for hp in model.hook_dict.values())
    torch.testing.assert_close(hooks.run_with_hooks(model, tokens, []), plain(model, tokens))


def test_interventions_on_the_bridge_and_through_backends(backends):
    native, bridge = backends["gpt2"], backends["tl"]
    ids = native.tokens([["the", "dogs", "near", "Bartholomew", "run"]])
    for b in (native, bridge):
        logits, cache = hooks.cache_activations(b, ids, "blocks.*.hook_resid_post")
        torch.testing.assert_close(hooks.patch_activation(b, ids, ids, 1, 2), logits, atol=1e-6, rtol=0)
        truncated = hooks.ablate_block(b, ids, [1, 2])
        assert truncated.shape == logits.shape
    # ablating blocks 1 and 2 gives the same logits through our GPT and through the bridge
    torch.testing.assert_close(hooks.ablate_block(bridge, ids, [1, 2]), hooks.ablate_block(native, ids, [1, 2]),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(hooks.ablate_head(bridge, ids, 0, 1), hooks.ablate_head(native, ids, 0, 1),
                               atol=1e-5, rtol=0)
    with pytest.raises(TypeError, match="TransformerLens-style"):
        hooks.ablate_block(backends["nnsight"], ids, 1)


def test_hook_name_short_forms(model):
    assert hooks.hook_name(model, 2, "resid_post") == "blocks.2.hook_resid_post"
    assert hooks.hook_name(model, 2, "z") == "blocks.2.attn.hook_z"
    assert hooks.hook_name(model, 2, "mlp.hook_post") == "blocks.2.mlp.hook_post"
    assert hooks.hook_name(model, None, "blocks.1.hook_mlp_out") == "blocks.1.hook_mlp_out"
    with pytest.raises(ValueError, match="layer must be"):
        hooks.hook_name(model, 7, "resid_post")
    with pytest.raises(ValueError, match="query and key"):
        hooks.patch_activation(model, torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long),
                               1, 2, hook="attn.hook_pattern")
