"""Hook points: TransformerLens names, caching, the explicit-attention path, interventions."""

import math

import pytest
import torch
from transformer_lens import ActivationCache

from gpt_model import GPT, GPTConfig

# The design's hook list, plus ln2.hook_normalized (TransformerLens has it; the design's list omits it).
BLOCK_HOOKS = {
    "hook_resid_pre", "ln1.hook_normalized", "attn.hook_q", "attn.hook_k", "attn.hook_v",
    "attn.hook_attn_scores", "attn.hook_pattern", "attn.hook_z", "hook_attn_out", "hook_resid_mid",
    "ln2.hook_normalized", "mlp.hook_pre", "mlp.hook_post", "hook_mlp_out", "hook_resid_post",
}
GLOBAL_HOOKS = {"hook_embed", "hook_pos_embed", "ln_final.hook_normalized"}


def make(n_layer=3, **kwargs) -> GPT:
    cfg = GPTConfig(n_layer=n_layer, d_model=48, n_head=6, context_len=16, vocab_size=29, **kwargs)
    return GPT(cfg).eval()


def expected_names(n_layer: int, extra_block: set[str] = frozenset()) -> set[str]:
    per_block = BLOCK_HOOKS | set(extra_block)
    return GLOBAL_HOOKS | {f"blocks.{i}.{h}" for i in range(n_layer) for h in per_block}


@pytest.mark.parametrize("kwargs", [{}, {"ln_placement": "post"}, {"norm": "rmsnorm"},
                                    {"ln_placement": "post", "residual": "deepnorm"}])
def test_hook_names_match_design(kwargs):
    assert set(make(**kwargs).hook_dict) == expected_names(3)


def test_swiglu_adds_transformerlens_pre_linear_hook():
    assert set(make(mlp="swiglu").hook_dict) == expected_names(3, {"mlp.hook_pre_linear"})


def test_run_with_cache_shapes_and_activation_cache():
    model = make()
    tokens = torch.randint(0, 29, (2, 9))
    logits, cache = model.run_with_cache(tokens)
    assert isinstance(cache, ActivationCache)
    assert set(cache.keys()) == set(model.hook_dict)
    assert cache["blocks.1.hook_resid_post"].shape == (2, 9, 48)
    assert cache["blocks.1.attn.hook_q"].shape == (2, 9, 6, 8)
    assert cache["blocks.1.attn.hook_z"].shape == (2, 9, 6, 8)
    assert cache["blocks.1.attn.hook_pattern"].shape == (2, 6, 9, 9)
    assert cache["blocks.1.mlp.hook_post"].shape == (2, 9, 192)
    assert cache["hook_pos_embed"].shape == (2, 9, 48)
    # TransformerLens shorthand works on our cache
    assert torch.equal(cache["resid_post", 1], cache["blocks.1.hook_resid_post"])
    # the residual stream adds up: resid_post = resid_mid + mlp_out = resid_pre + attn_out + mlp_out
    torch.testing.assert_close(
        cache["blocks.2.hook_resid_post"],
        cache["blocks.2.hook_resid_pre"] + cache["blocks.2.hook_attn_out"] + cache["blocks.2.hook_mlp_out"],
    )
    torch.testing.assert_close(cache["blocks.0.hook_resid_pre"], cache["hook_embed"] + cache["hook_pos_embed"])
    torch.testing.assert_close(logits, model.unembed(cache["ln_final.hook_normalized"]))
    assert not any(hp.fwd_hooks for hp in model.hook_points()), "caching hooks must be removed"


def test_pattern_equals_manual_softmax_and_rows_sum_to_one():
    model = make()
    tokens = torch.randint(0, 29, (2, 10))
    _, cache = model.run_with_cache(tokens)
    for layer in range(3):
        q = cache[f"blocks.{layer}.attn.hook_q"].transpose(1, 2)  # [b, h, t, dh]
        k = cache[f"blocks.{layer}.attn.hook_k"].transpose(1, 2)
        scores = q @ k.transpose(-1, -2) / math.sqrt(8)
        mask = torch.triu(torch.ones(10, 10, dtype=torch.bool), diagonal=1)
        manual = scores.masked_fill(mask, float("-inf")).softmax(-1)
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"]
        torch.testing.assert_close(pattern, manual)
        torch.testing.assert_close(pattern.sum(-1), torch.ones(2, 6, 10))
        assert (pattern.masked_select(mask) == 0).all()
        z = cache[f"blocks.{layer}.attn.hook_z"]
        v = cache[f"blocks.{layer}.attn.hook_v"].transpose(1, 2)
        torch.testing.assert_close(z, (pattern @ v).transpose(1, 2))


def test_sdpa_runs_unless_scores_or_pattern_are_hooked(monkeypatch):
    model = make()
    calls = []
    real_sdpa = torch.nn.functional.scaled_dot_product_attention

    def counting_sdpa(*args, **kwargs):
        calls.append(1)
        return real_sdpa(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", counting_sdpa)
    tokens = torch.randint(0, 29, (1, 8))
    model(tokens)
    assert len(calls) == 3
    model.run_with_cache(tokens, names_filter=lambda n: n.endswith("resid_post"))
    assert len(calls) == 6, "caching the residual stream must keep the fused path"
    model.run_with_cache(tokens, names_filter="blocks.1.attn.hook_pattern")
    assert len(calls) == 8, "only block 1 takes the explicit path"
    model(tokens)
    assert len(calls) == 11, "hooks are gone after the cached run"


def test_zero_ablating_attn_out_equals_zeroing_the_output_projection():
    model = make()
    tokens = torch.randint(0, 29, (2, 8))

    def zero(act, hook):
        return torch.zeros_like(act)

    ablated = model.run_with_hooks(tokens, fwd_hooks=[("blocks.1.hook_attn_out", zero)])
    reference = make()
    reference.load_state_dict(model.state_dict())
    with torch.no_grad():
        reference.blocks[1].attn.out.weight.zero_()
        reference.blocks[1].attn.out.bias.zero_()
    torch.testing.assert_close(ablated, reference(tokens))
    assert (ablated - model(tokens)).abs().max() > 1e-3
    torch.testing.assert_close(model(tokens), model(tokens))  # hook removed afterwards


def test_editing_pattern_through_hook_changes_output():
    """A hook that makes every query attend only to itself: z equals v."""
    model = make(n_layer=1)
    tokens = torch.randint(0, 29, (1, 6))

    def attend_to_self(pattern, hook):
        return torch.eye(6).expand_as(pattern).clone()

    _, cache = model.run_with_cache(tokens, names_filter=["blocks.0.attn.hook_v", "blocks.0.attn.hook_z"])
    with model.hooks(fwd_hooks=[("blocks.0.attn.hook_pattern", attend_to_self)]):
        _, hooked = model.run_with_cache(tokens, names_filter=["blocks.0.attn.hook_v", "blocks.0.attn.hook_z"])
    torch.testing.assert_close(hooked["blocks.0.attn.hook_z"], hooked["blocks.0.attn.hook_v"])
    assert not torch.allclose(cache["blocks.0.attn.hook_z"], cache["blocks.0.attn.hook_v"])


def test_backward_cache_reaches_hook_points():
    model = make()
    tokens = torch.randint(0, 29, (1, 6))
    _, cache = model.run_with_cache(tokens, return_type="loss", incl_bwd=True,
                                    names_filter=lambda n: n.endswith("hook_resid_post"))
    assert cache["blocks.0.hook_resid_post_grad"].shape == (1, 6, 48)
    assert cache["blocks.0.hook_resid_post_grad"].abs().sum() > 0
