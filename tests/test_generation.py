"""KV-cache generation equals recomputation; sampling options; clear errors."""

import pytest
import torch

from gpt_model import GPT, GPTConfig, KVCache, sample_next


def make(**kwargs) -> GPT:
    cfg = GPTConfig(n_layer=2, d_model=32, n_head=4, context_len=24, vocab_size=41, **kwargs)
    return GPT(cfg).eval()


@pytest.mark.parametrize("kwargs", [{}, {"ln_placement": "post", "residual": "deepnorm"},
                                    {"mlp": "swiglu", "norm": "rmsnorm", "bias": False}])
def test_cached_logits_equal_full_forward(kwargs):
    model = make(**kwargs)
    tokens = torch.randint(0, 41, (2, 15))
    full = model(tokens)
    cache = KVCache.for_model(model, batch=2)
    pieces = [model(tokens[:, :6], kv_cache=cache)]  # prefill
    pieces += [model(tokens[:, i : i + 1], kv_cache=cache) for i in range(6, 10)]  # one at a time
    pieces.append(model(tokens[:, 10:], kv_cache=cache))  # several new tokens after a cache
    assert cache.length == 15
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, rtol=1e-5, atol=1e-5)


def test_cached_explicit_attention_path_equals_full_forward():
    model = make()
    tokens = torch.randint(0, 41, (1, 10))
    full = model(tokens)
    cache = KVCache.for_model(model, batch=1)
    with model.hooks(fwd_hooks=[(lambda n: n.endswith("hook_pattern"), lambda x, hook: x)]):
        first = model(tokens[:, :4], kv_cache=cache)
        rest = model(tokens[:, 4:], kv_cache=cache)
    torch.testing.assert_close(torch.cat([first, rest], 1), full, rtol=1e-5, atol=1e-5)


def test_greedy_generation_with_cache_equals_without():
    model = make()
    prompt = torch.randint(0, 41, (3, 5))
    with_cache = model.generate(prompt, 12, temperature=0)
    without = model.generate(prompt, 12, temperature=0, use_cache=False)
    assert with_cache.shape == (3, 17)
    assert torch.equal(with_cache, without)
    assert torch.equal(with_cache[:, :5], prompt)


def test_sampling_with_cache_equals_without_for_same_seed():
    model = make()
    prompt = torch.randint(0, 41, (2, 3))
    a = model.generate(prompt, 10, top_k=10, top_p=0.9, generator=torch.Generator().manual_seed(5))
    b = model.generate(prompt, 10, top_k=10, top_p=0.9, use_cache=False,
                       generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_sample_next_filters():
    logits = torch.tensor([[0.0, 3.0, 2.9, -1.0]])
    assert sample_next(logits, temperature=0).item() == 1
    g = torch.Generator().manual_seed(0)
    assert {sample_next(logits, top_k=1, generator=g).item() for _ in range(20)} == {1}
    assert {sample_next(logits, top_p=0.3, generator=g).item() for _ in range(20)} == {1}
    # top_p = 0.8 keeps the two tokens holding ~95% of the mass (the first alone has ~50%)
    seen = {sample_next(logits, top_p=0.8, generator=g).item() for _ in range(200)}
    assert seen == {1, 2}
    seen = {sample_next(logits, top_k=3, generator=g).item() for _ in range(400)}
    assert seen == {0, 1, 2}


def test_generate_restores_training_mode():
    model = make()
    model.train()
    model.generate(torch.zeros(1, 2, dtype=torch.long), 2)
    assert model.training


@pytest.mark.parametrize(
    "prompt_len, new, kwargs, match",
    [
        (25, 0, {}, "prompt of 25 tokens exceeds"),
        (20, 5, {}, "max_new_tokens"),
        (3, 2, {"temperature": -1.0}, "temperature"),
        (3, 2, {"top_k": 0}, "top_k"),
        (3, 2, {"top_p": 0.0}, "top_p"),
        (3, -1, {}, "max_new_tokens"),
    ],
)
def test_generation_errors(prompt_len, new, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make().generate(torch.zeros(1, prompt_len, dtype=torch.long), new, **kwargs)


def test_full_cache_raises():
    model = make()
    cache = KVCache.for_model(model, batch=1)
    model(torch.zeros(1, 20, dtype=torch.long), kv_cache=cache)
    with pytest.raises(ValueError, match="context_len"):
        model(torch.zeros(1, 5, dtype=torch.long), kv_cache=cache)
