"""Refuse weights holding NaN or ±inf at load, naming the tensor.

A model with one poisoned weight still runs: its activations go NaN from that layer on, probes
fall to the majority baseline there and heatmaps render blank, which looks like a real result.
So every loader (``gpt_model.checkpoint.load_model``, ``gpt_model.load_gpt2``, ``hooks.load``
for every backend) checks, and ``allow_nonfinite=True`` (CLI ``--allow-nonfinite``) lets a
user look anyway.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


class NonFiniteWeightsError(ValueError):
    """A weight tensor holds NaN or ±inf."""


def first_nonfinite(named_tensors: Iterable[tuple[str, torch.Tensor]]) -> tuple[str, int, int] | None:
    """(name, number of non-finite entries, numel) of the first tensor with NaN/inf, or None."""
    for name, t in named_tensors:
        if not torch.is_tensor(t) or not (t.is_floating_point() or t.is_complex()):
            continue
        bad = ~torch.isfinite(t.detach())
        if bool(bad.any()):
            return name, int(bad.sum()), t.numel()
    return None


def check_finite_weights(named_tensors: Iterable[tuple[str, torch.Tensor]] | Any, source: str, *,
                         allow_nonfinite: bool = False) -> None:
    """Raise NonFiniteWeightsError naming the first tensor with NaN/inf (``source`` names the
    file or model) unless ``allow_nonfinite``. Takes (name, tensor) pairs, a state dict or an
    ``nn.Module``."""
    if allow_nonfinite:
        return
    if isinstance(named_tensors, torch.nn.Module):
        named_tensors = list(named_tensors.named_parameters()) + list(named_tensors.named_buffers())
    elif isinstance(named_tensors, dict):
        named_tensors = named_tensors.items()
    found = first_nonfinite(named_tensors)
    if found is not None:
        name, n_bad, numel = found
        raise NonFiniteWeightsError(
            f"{source}: weight {name!r} holds {n_bad} NaN/inf value(s) of {numel}; refusing to load a "
            f"poisoned model (pass --allow-nonfinite, or allow_nonfinite=True, to look at it anyway)")
