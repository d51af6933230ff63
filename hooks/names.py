"""Hook names: the TransformerLens names every backend understands, and selecting them.

Residual-stream layers are numbered 0..n_layer: layer 0 is the embeddings (the input of block 0,
`blocks.0.hook_resid_pre`), layer l ≥ 1 is the output of block l-1 (`blocks.{l-1}.hook_resid_post`).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Sequence

# Per-block hook points of our GPT (and of TransformerLens's bridge aliases), in execution order,
# with what each one holds. b = batch, t = positions, h = heads, dh = d_head, d = d_model,
# m = MLP width.
BLOCK_HOOKS: dict[str, str] = {
    "hook_resid_pre": "[b, t, d] residual stream entering the block",
    "ln1.hook_normalized": "[b, t, d] output of the first norm (attention input for Pre-LN)",
    "attn.hook_q": "[b, t, h, dh] queries",
    "attn.hook_k": "[b, t, h, dh] keys",
    "attn.hook_v": "[b, t, h, dh] values",
    "attn.hook_attn_scores": "[b, h, t_query, t_key] QKᵀ/√dh, causally masked with -inf",
    "attn.hook_pattern": "[b, h, t_query, t_key] attention weights; rows sum to 1",
    "attn.hook_z": "[b, t, h, dh] per-head attention output before the output projection",
    "hook_attn_out": "[b, t, d] attention output added to the residual stream",
    "hook_resid_mid": "[b, t, d] residual stream between attention and MLP",
    "ln2.hook_normalized": "[b, t, d] output of the second norm (MLP input for Pre-LN)",
    "mlp.hook_pre": "[b, t, m] MLP pre-activation (the gate for SwiGLU)",
    "mlp.hook_post": "[b, t, m] MLP activation, input of the output projection",
    "hook_mlp_out": "[b, t, d] MLP output added to the residual stream",
    "hook_resid_post": "[b, t, d] residual stream leaving the block",
}
GLOBAL_HOOKS: dict[str, str] = {
    "hook_embed": "[b, t, d] token embeddings",
    "hook_pos_embed": "[b, t, d] position embeddings",
    "ln_final.hook_normalized": "[b, t, d] final norm output, the input of the unembedding",
}
# Hooks whose activation has a query × key layout instead of one row per token.
PAIRWISE_SUFFIXES = ("hook_pattern", "hook_attn_scores")

NameSelector = str | re.Pattern | Callable[[str], bool] | Iterable[str | re.Pattern] | None


def resid_name(layer: int, n_layer: int) -> str:
    """The hook holding residual-stream layer `layer` (0 = embeddings, l = after block l-1)."""
    if not 0 <= layer <= n_layer:
        raise ValueError(f"residual layer must be in [0, {n_layer}], got {layer}")
    return "blocks.0.hook_resid_pre" if layer == 0 else f"blocks.{layer - 1}.hook_resid_post"


def resid_names(n_layer: int) -> list[str]:
    """The n_layer + 1 residual-stream hooks, embeddings first."""
    return [resid_name(layer, n_layer) for layer in range(n_layer + 1)]


def pattern_name(layer: int) -> str:
    return f"blocks.{layer}.attn.hook_pattern"


def is_pairwise(name: str) -> bool:
    """True for attention scores/patterns ([h, t_query, t_key] per sentence)."""
    return name.endswith(PAIRWISE_SUFFIXES)


def layer_of(name: str) -> int | None:
    """Block index of a `blocks.{i}.…` hook name, else None."""
    match = re.match(r"blocks\.(\d+)\.", name)
    return int(match.group(1)) if match else None


def _matcher(selector: str | re.Pattern) -> Callable[[str], bool]:
    if isinstance(selector, re.Pattern):
        return lambda name: selector.fullmatch(name) is not None
    if selector.startswith("re:"):
        pattern = re.compile(selector[3:])
        return lambda name: pattern.fullmatch(name) is not None
    if any(ch in selector for ch in "*?["):
        return lambda name: fnmatch.fnmatchcase(name, selector)
    return lambda name: name == selector


def select_hooks(available: Sequence[str], selector: NameSelector = None) -> list[str]:
    """The names in `available` that `selector` picks, in `available`'s order.

    selector: None (all), an exact name, a glob ("blocks.*.hook_resid_post"), a regular
    expression (a compiled `re.Pattern`, or a string prefixed "re:", matched in full), a
    predicate, or a list of any of these. An exact name or pattern that matches nothing
    raises ValueError (a typo should not silently cache nothing).
    """
    if selector is None:
        return list(available)
    if callable(selector) and not isinstance(selector, (str, re.Pattern)):
        return [name for name in available if selector(name)]
    selectors = [selector] if isinstance(selector, (str, re.Pattern)) else list(selector)
    chosen: set[str] = set()
    for sel in selectors:
        if not isinstance(sel, (str, re.Pattern)):
            raise TypeError(f"hook selector must be a name, a glob, a regex or a predicate, got {sel!r}")
        hits = {name for name in available if _matcher(sel)(name)}
        if not hits:
            shown = sel.pattern if isinstance(sel, re.Pattern) else sel
            raise ValueError(f"no hook matches {shown!r}; e.g. {', '.join(list(available)[:4])}, …")
        chosen |= hits
    return [name for name in available if name in chosen]
