"""Caching and interventions on a TransformerLens-style model: our GPT (a HookedRootModule) or
a TransformerBridge, or a backend wrapping either. Every call holds the model's lock.

    logits, cache = cache_activations(model, tokens, "blocks.*.hook_resid_post", dtype=torch.float16)
    logits = ablate_head(model, tokens, layer=2, head=1)                   # zero, via hook_z
    logits = ablate_mlp(model, tokens, layer=0, mode="mean")               # mean over the reference
    logits = ablate_block(model, tokens, layers=[4, 5])                    # attn_out and mlp_out
    logits = patch_activation(model, clean, corrupted, layer=3, position=5)  # resid_post by default
    logits = add_steering_vector(model, tokens, vector, layer=2, scale=4.0)

`tokens` is an id tensor [batch, positions] (or [positions]); a backend's `tokens(sentences)`
makes one from words. Each intervention returns the changed logits [batch, positions, vocab].
Hook arguments take a full name ("blocks.3.hook_mlp_out") or the block-local short form
("resid_post", "mlp_out", "attn_out", "z", "attn.hook_z", "mlp.hook_post", …).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor
from transformer_lens import ActivationCache

from hooks.backends import Backend, lock_for
from hooks.names import NameSelector, is_pairwise, select_hooks

HookFn = Callable[..., Tensor | None]


def _model(model: Any) -> Any:
    if isinstance(model, Backend):
        if not hasattr(model.model, "run_with_hooks"):
            raise TypeError(
                f"interventions need a TransformerLens-style model (native or tl backend), "
                f"not the {model.kind} backend"
            )
        return model.model
    if not hasattr(model, "run_with_hooks") or not hasattr(model, "hook_dict"):
        raise TypeError(f"expected a HookedRootModule, a TransformerBridge or a backend, got {type(model).__name__}")
    return model


def _tokens(model: Any, tokens: Tensor) -> Tensor:
    if not isinstance(tokens, Tensor):
        raise TypeError("tokens must be an id tensor [batch, positions]; use backend.tokens(sentences)")
    if tokens.dim() == 1:
        tokens = tokens.unsqueeze(0)
    device = next(model.parameters()).device
    return tokens.to(device)


def hook_name(model: Any, layer: int | None, hook: str) -> str:
    """Full hook name of `hook` in block `layer` (or `hook` itself when already a full name)."""
    model = _model(model)
    names = model.hook_dict
    if hook in names:
        return hook
    if layer is None:
        raise ValueError(f"unknown hook {hook!r} (no layer given)")
    n_layer = _n_layer(model)
    if not 0 <= layer < n_layer:
        raise ValueError(f"layer must be in [0, {n_layer}), got {layer}")
    short = hook.removeprefix("hook_")
    for candidate in (f"blocks.{layer}.{hook}", f"blocks.{layer}.hook_{short}",
                      f"blocks.{layer}.attn.hook_{short}", f"blocks.{layer}.mlp.hook_{short.removeprefix('mlp_')}"):
        if candidate in names:
            return candidate
    raise ValueError(f"block {layer} has no hook {hook!r}")


def _n_layer(model: Any) -> int:
    cfg = model.cfg
    return getattr(cfg, "n_layers", None) or cfg.n_layer


# ----------------------------------------------------------------------------- caching
def run_with_hooks(model: Any, tokens: Tensor, fwd_hooks: Sequence[tuple[str | Callable, HookFn]],
                   **kwargs: Any) -> Tensor:
    """TransformerLens's run_with_hooks under the model's lock and no_grad; returns logits."""
    model = _model(model)
    tokens = _tokens(model, tokens)
    with lock_for(model), torch.no_grad():
        return model.run_with_hooks(tokens, fwd_hooks=list(fwd_hooks), **kwargs)


def cache_activations(
    model: Any,
    tokens: Tensor,
    names: NameSelector = None,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    fwd_hooks: Sequence[tuple[str | Callable, HookFn]] = (),
) -> tuple[Tensor, ActivationCache]:
    """Logits and an ActivationCache of the hooks `names` picks (exact names, globs such as
    "blocks.*.hook_resid_post", "re:…" regexes, a compiled regex, a predicate, or a list).

    Activations are moved to `device` and cast to `dtype` inside the hook, so a float16 cache of
    a float32 model never holds float32 copies. `fwd_hooks` run as well (interventions); the cache
    sees each activation after the interventions registered on the same hook before it.
    """
    model = _model(model)
    chosen = select_hooks(list(model.hook_dict), names)
    cache: dict[str, Tensor] = {}

    def keeper(name: str) -> HookFn:
        def hook(x: Tensor, hook: Any = None) -> None:
            x = x.detach()
            if dtype is not None and x.is_floating_point():
                x = x.to(dtype)
            cache[name] = x.to(device) if device is not None else x
        return hook

    logits = run_with_hooks(model, tokens, [*fwd_hooks, *[(n, keeper(n)) for n in chosen]])
    return logits, ActivationCache(cache, model)


# ----------------------------------------------------------------------------- hook functions
def _mean_of(model: Any, reference: Tensor, name: str) -> Tensor:
    """Mean activation of hook `name` over the batch and positions of `reference` tokens."""
    _, cache = cache_activations(model, reference, [name])
    x = cache[name]
    return x.reshape(-1, *x.shape[2:]).mean(0)  # [b, t, …] → […]


def _replacement(model: Any, name: str, mode: str, reference: Tensor | None, tokens: Tensor) -> Tensor | float:
    if mode == "zero":
        return 0.0
    if mode == "mean":
        return _mean_of(model, tokens if reference is None else reference, name)
    raise ValueError(f"ablation mode must be 'zero' or 'mean', got {mode!r}")


def _as_list(layers: int | Iterable[int]) -> list[int]:
    return [layers] if isinstance(layers, int) else list(layers)


def ablate_head(model: Any, tokens: Tensor, layer: int, head: int | Iterable[int], *, mode: str = "zero",
                reference: Tensor | None = None) -> Tensor:
    """Logits with head(s) `head` of block `layer` ablated at `attn.hook_z` [b, t, h, dh]:
    set to zero, or (mode="mean") to the head's mean over `reference` tokens (default: `tokens`)."""
    model = _model(model)
    name = hook_name(model, layer, "attn.hook_z")
    heads = _as_list(head)
    n_head = model.cfg.n_heads
    if any(not 0 <= h < n_head for h in heads):
        raise ValueError(f"head must be in [0, {n_head}), got {heads}")
    value = _replacement(model, name, mode, reference, tokens)

    def hook(z: Tensor, hook: Any = None) -> Tensor:
        z = z.clone()
        z[:, :, heads] = value[heads] if isinstance(value, Tensor) else value
        return z

    return run_with_hooks(model, tokens, [(name, hook)])


def _ablate_outputs(model: Any, tokens: Tensor, names: list[str], mode: str, reference: Tensor | None) -> Tensor:
    fwd = []
    for name in names:
        value = _replacement(model, name, mode, reference, tokens)

        def hook(x: Tensor, hook: Any = None, value: Tensor | float = value) -> Tensor:
            return torch.zeros_like(x) + value if isinstance(value, Tensor) else torch.full_like(x, value)

        fwd.append((name, hook))
    return run_with_hooks(model, tokens, fwd)


def ablate_mlp(model: Any, tokens: Tensor, layer: int | Iterable[int], *, mode: str = "zero",
               reference: Tensor | None = None) -> Tensor:
    """Logits with the MLP output (`hook_mlp_out`) of block(s) `layer` zeroed or mean-ablated."""
    model = _model(model)
    names = [hook_name(model, layer_, "hook_mlp_out") for layer_ in _as_list(layer)]
    return _ablate_outputs(model, tokens, names, mode, reference)


def ablate_block(model: Any, tokens: Tensor, layers: int | Iterable[int], *, mode: str = "zero",
                 reference: Tensor | None = None) -> Tensor:
    """Logits with whole block(s) ablated: both of their writes to the residual stream
    (`hook_attn_out` and `hook_mlp_out`). In a Pre-LN model a zero-ablated block is the
    identity (resid_post = resid_pre); Post-LN blocks still apply their norms."""
    model = _model(model)
    names = [hook_name(model, layer, h) for layer in _as_list(layers) for h in ("hook_attn_out", "hook_mlp_out")]
    return _ablate_outputs(model, tokens, names, mode, reference)


def patch_activation(model: Any, clean: Tensor, corrupted: Tensor, layer: int | None, position: int, *,
                     hook: str = "resid_post", head: int | None = None) -> Tensor:
    """Activation patching: run `clean`, then `corrupted` with hook `hook` of block `layer`
    replaced at token `position` (and only head `head`, for per-head hooks such as hook_z) by
    its clean value. Returns the patched run's logits. Positions before `position` cannot
    change (attention is causal)."""
    model = _model(model)
    name = hook_name(model, layer, hook)
    if is_pairwise(name):
        raise ValueError(f"{name} is indexed by query and key, not by position: patch a per-token hook")
    clean, corrupted = _tokens(model, clean), _tokens(model, corrupted)
    t = corrupted.shape[1]
    if not -t <= position < t:
        raise IndexError(f"position {position} outside the {t} corrupted tokens")
    _, cache = cache_activations(model, clean, [name])
    source = cache[name]
    if source.shape[1] <= position % t:
        raise IndexError(f"position {position} outside the {source.shape[1]} clean tokens")

    def patch(x: Tensor, hook: Any = None) -> Tensor:
        x = x.clone()
        if head is None:
            x[:, position] = source[:, position]
        else:
            x[:, position, head] = source[:, position, head]
        return x

    return run_with_hooks(model, corrupted, [(name, patch)])


def add_steering_vector(model: Any, tokens: Tensor, vector: Tensor, layer: int | None, *, scale: float = 1.0,
                        hook: str = "resid_post", positions: int | Sequence[int] | slice | None = None) -> Tensor:
    """Logits with `scale · vector` ([d_model]) added to the residual stream (`hook`, default
    block `layer`'s resid_post) at `positions` (default: every position)."""
    model = _model(model)
    name = hook_name(model, layer, hook)
    if is_pairwise(name):
        raise ValueError(f"{name} is indexed by query and key: steer a residual-stream hook")
    where = slice(None) if positions is None else positions

    def steer(x: Tensor, hook: Any = None) -> Tensor:
        x = x.clone()
        x[:, where] += scale * vector.to(device=x.device, dtype=x.dtype)
        return x

    return run_with_hooks(model, tokens, [(name, steer)])
