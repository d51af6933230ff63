"""What a training step minimises and how: the summed next-token loss (`LossSum`, the unit that
is compiled and wrapped in DDP) and AdamW with nanoGPT's weight-decay groups."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gpt_model.data import IGNORE_INDEX
from gpt_model.evaluate import autocast_context
from gpt_model.model import GPT
from gpt_model.run_config import TrainConfig


class LossSum(nn.Module):
    """tokens, targets → the summed next-token loss over the counted targets (fp32).

    The unit that is compiled and wrapped in DDP: with `torch.compile` the fp32 upcast and the
    cross-entropy over the vocabulary fuse with the model instead of running as separate
    memory-bound passes over the logits."""

    def __init__(self, model: GPT, amp_dtype: torch.dtype | None):
        super().__init__()
        self.model = model
        self.amp_dtype = amp_dtype

    def forward(self, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        with autocast_context(tokens.device, self.amp_dtype):
            logits = self.model(tokens)  # [b, t, V]
        return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX,
                               reduction="sum")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """nanoGPT's split: weight decay on every ≥2-D parameter (linear weights and embeddings,
    the tied embedding once), none on biases and norm gains (1-D)."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():  # named_parameters de-duplicates tied weights
        if not p.requires_grad:
            continue
        (decay if p.dim() >= 2 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay, "name": "decay"},
        {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"},
    ]


def build_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    # fused AdamW runs on CPU and CUDA in torch ≥ 2.4: one kernel for all parameters.
    return torch.optim.AdamW(
        param_groups(model, cfg.weight_decay),
        lr=cfg.lr,
        betas=(cfg.beta1, cfg.beta2),
        eps=cfg.adam_eps,
        fused=device.type in ("cpu", "cuda"),
    )
