"""Learning-rate schedule: linear warmup, then cosine decay to a floor (or constant).

    lr(s) = lr · (s+1)/W                                   for s < W   (warmup, W = warmup_steps)
    lr(s) = min_lr + ½(1 + cos(π·p))·(lr − min_lr)          p = (s − W)/(S − W) clamped to [0, 1]

`s` counts optimizer steps from 0, S = max_steps, min_lr = lr · min_lr_ratio. The warmup
reaches the full rate at its last step (s = W−1); the cosine starts from it at s = W and
reaches min_lr at the final step s = S (so the last step taken, S−1, is just above it).
"""

from __future__ import annotations

import math

SCHEDULES = ("cosine", "constant")


def lr_at(
    step: int,
    *,
    lr: float,
    max_steps: int,
    warmup_steps: int = 0,
    min_lr_ratio: float = 0.1,
    schedule: str = "cosine",
) -> float:
    """The learning rate of optimizer step `step` (0-based)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if step < 0:
        raise ValueError(f"step must be ≥ 0, got {step}")
    if warmup_steps > 0 and step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return lr
    min_lr = lr * min_lr_ratio
    span = max(1, max_steps - warmup_steps)
    progress = min(1.0, max(0.0, (step - warmup_steps) / span))
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)
