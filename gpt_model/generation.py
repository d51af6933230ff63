"""Autoregressive generation: a key/value cache and temperature / top-k / top-p sampling."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from gpt_model.model import GPT


class KVCache:
    """Keys and values of every layer, preallocated to the context length.

    `append(layer, k, v)` writes the new positions of one layer and returns the keys and
    values seen so far; the model advances `length` once per forward pass.
    """

    def __init__(self, n_layer: int, batch: int, n_head: int, context_len: int, d_head: int,
                 device: torch.device, dtype: torch.dtype):
        shape = (batch, n_head, context_len, d_head)
        self.keys = [torch.empty(shape, device=device, dtype=dtype) for _ in range(n_layer)]
        self.values = [torch.empty(shape, device=device, dtype=dtype) for _ in range(n_layer)]
        self.length = 0

    @classmethod
    def for_model(cls, model: "GPT", batch: int) -> "KVCache":
        cfg = model.cfg
        dtype = model.embed.weight.dtype
        return cls(cfg.n_layer, batch, cfg.n_head, cfg.context_len, cfg.d_head, model.device, dtype)

    def append(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """k, v: [b, h, t_new, dh] → all keys/values so far [b, h, length + t_new, dh]."""
        end = self.length + k.shape[2]
        if end > self.keys[layer].shape[2]:
            raise ValueError(f"KV cache is full: {end} positions exceed {self.keys[layer].shape[2]}")
        self.keys[layer][:, :, self.length : end] = k
        self.values[layer][:, :, self.length : end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]


def sample_next(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """logits [b, V] → next token ids [b, 1]. temperature 0 is greedy."""
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # drop a token when the tokens ranked above it already hold top_p of the mass
        drop = probs.cumsum(dim=-1) - probs > top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return torch.multinomial(logits.softmax(dim=-1), 1, generator=generator)


def _check_sampling_args(max_new_tokens: int, temperature: float, top_k: int | None,
                         top_p: float | None) -> None:
    if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be a non-negative integer, got {max_new_tokens!r}")
    if temperature < 0:
        raise ValueError(f"temperature must be ≥ 0, got {temperature!r}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be ≥ 1, got {top_k!r}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")


@torch.no_grad()
def generate(
    model: "GPT",
    tokens: Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    use_cache: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Continue `tokens` [b, t] (or [t]) by max_new_tokens; returns [b, t + max_new_tokens]."""
    _check_sampling_args(max_new_tokens, temperature, top_k, top_p)
    if tokens.dim() == 1:
        tokens = tokens.unsqueeze(0)
    context = model.cfg.context_len
    if tokens.shape[1] > context:
        raise ValueError(f"prompt of {tokens.shape[1]} tokens exceeds the model's context_len ({context})")
    if tokens.shape[1] + max_new_tokens > context:
        raise ValueError(
            f"prompt ({tokens.shape[1]} tokens) + max_new_tokens ({max_new_tokens}) exceeds the "
            f"model's context_len ({context}); learned position embeddings stop there"
        )
    was_training = model.training
    model.eval()
    try:
        out = tokens
        if max_new_tokens == 0:
            return out
        cache = KVCache.for_model(model, tokens.shape[0]) if use_cache else None
        logits = model(tokens, kv_cache=cache)[:, -1]
        for step in range(max_new_tokens):
            next_token = sample_next(logits, temperature, top_k, top_p, generator)
            out = torch.cat([out, next_token], dim=1)
            if step == max_new_tokens - 1:
                break
            if cache is not None:
                logits = model(next_token, kv_cache=cache)[:, -1]
            else:
                logits = model(out)[:, -1]
        return out
    finally:
        model.train(was_training)
