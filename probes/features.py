"""Residual-stream features for the suite: any container → one tensor, checked to be finite.

``features`` holds the residual stream at every word of a corpus, ``[n_layer + 1, n_words,
d_model]`` (layer 0 = embeddings, layer ℓ = after block ℓ − 1): a numpy array or memmap, a torch
tensor, a list of per-layer arrays, or a ``hooks.ActivationStore``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor


class NonFiniteActivationsError(ValueError):
    """A layer's activations hold NaN or ±inf (a poisoned model): probing them would report the
    majority baseline as if it were a finding."""


def as_layers(features: Any) -> tuple[int, Callable[[int], np.ndarray | Tensor]]:
    """(number of layers, layer(l) → [n_words, d]) for any supported feature container."""
    if hasattr(features, "layer") and hasattr(features, "index"):  # hooks.ActivationStore
        n = int(features.index["model"]["n_layer"]) + 1
        return n, features.layer
    if isinstance(features, (list, tuple)):
        return len(features), lambda l: features[l]
    if isinstance(features, (np.ndarray, Tensor)):
        if features.ndim != 3:
            raise ValueError(f"features must be [n_layer + 1, n_words, d_model], got shape {tuple(features.shape)}")
        return int(features.shape[0]), lambda l: features[l]
    raise TypeError(f"cannot read features from {type(features).__name__}")


def to_tensor(features: Any, device: str | torch.device = "cpu") -> Tensor:
    """All layers as one float32 tensor [n_layer + 1, n_words, d] on ``device``."""
    if isinstance(features, Tensor) and features.ndim == 3:
        return features.to(device=device, dtype=torch.float32)
    n, layer = as_layers(features)
    first = layer(0)
    out = torch.empty((n, *first.shape), dtype=torch.float32)
    view = out.numpy()
    for l in range(n):
        x = layer(l)
        if isinstance(x, Tensor):
            out[l] = x.detach().to("cpu", torch.float32)
        else:
            view[l] = x  # numpy casts (e.g. a float16 memmap) while copying
    return out.to(device)


def layer_name(layer: int) -> str:
    """The hook point a feature layer was read at."""
    return "embeddings, blocks.0.hook_resid_pre" if layer == 0 else f"blocks.{layer - 1}.hook_resid_post"


def check_finite(X: Tensor, source: str = "features") -> None:
    """Raise NonFiniteActivationsError naming ``source`` and the first layer holding NaN/inf."""
    for l in range(X.shape[0]):
        bad = ~torch.isfinite(X[l])
        if bool(bad.any()):
            raise NonFiniteActivationsError(
                f"{source}: the activations at layer {l} ({layer_name(l)}) hold {int(bad.sum())} NaN/inf value(s) "
                f"of {bad.numel()}; probing them would report the majority baseline as a result (are the model's "
                f"weights finite?)")
