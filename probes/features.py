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


class FeatureLayers:
    """One model's features, read a task's rows at a time: ``rows(index)`` → float32
    [n_layer + 1, len(index), d] on ``device``. A tensor is indexed where it lies; a memmap, a
    list of arrays or an ``ActivationStore`` (float16 on disk) is gathered layer by layer, so only
    the task's rows are ever in memory as float32."""

    def __init__(self, features: Any, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        if isinstance(features, Tensor) and features.ndim == 3:
            self._tensor: Tensor | None = features.to(device=self.device, dtype=torch.float32)
            self.n_layers, self.n_words, self.d = (int(x) for x in self._tensor.shape)
            self._layer = self._tensor.__getitem__  # not a closure over self: no cycle keeping the features alive
        else:
            self._tensor = None
            self.n_layers, self._layer = as_layers(features)
            first = self._layer(0)
            self.n_words, self.d = int(first.shape[0]), int(first.shape[1])

    def rows(self, index: np.ndarray) -> Tensor:
        if self._tensor is not None:
            return self._tensor[:, torch.as_tensor(index, device=self.device)]
        out = torch.empty((self.n_layers, len(index), self.d), dtype=torch.float32)
        for l in range(self.n_layers):
            x = self._layer(l)
            if isinstance(x, Tensor):
                out[l] = x[torch.as_tensor(index, device=x.device)].to("cpu", torch.float32)
            else:
                out[l].numpy()[:] = x[np.asarray(index)]  # numpy casts a float16 memmap while copying
        return out.to(self.device)

    def check_finite(self, source: str = "features") -> None:
        """``check_finite`` one layer at a time."""
        if self._tensor is not None:
            check_finite(self._tensor, source)
            return
        for l in range(self.n_layers):
            x = self._layer(l)
            _check_layer(x, l, source)


def layer_name(layer: int) -> str:
    """The hook point a feature layer was read at."""
    return "embeddings, blocks.0.hook_resid_pre" if layer == 0 else f"blocks.{layer - 1}.hook_resid_post"


def check_finite(X: Tensor, source: str = "features") -> None:
    """Raise NonFiniteActivationsError naming ``source`` and the first layer holding NaN/inf."""
    for l in range(X.shape[0]):
        _check_layer(X[l], l, source)


def _check_layer(x: Tensor | np.ndarray, l: int, source: str) -> None:
    bad = ~torch.isfinite(x) if isinstance(x, Tensor) else ~np.isfinite(x)
    if bool(bad.any()):
        raise NonFiniteActivationsError(
            f"{source}: the activations at layer {l} ({layer_name(l)}) hold {int(bad.sum())} NaN/inf value(s) "
            f"of {bad.size if isinstance(bad, np.ndarray) else bad.numel()}; probing them would report the majority baseline as a result (are the model's "
            f"weights finite?)")
