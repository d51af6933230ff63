"""Model FLOPs and utilisation (MFU): training FLOPs per token and the peaks of known GPUs.

    mfu = tokens_per_s * flops_per_token(cfg) / (peak_bf16_flops(device) * world_size)
"""

from __future__ import annotations

import torch

from gpt_model.config import GPTConfig

# Dense bf16 tensor-core peaks (FLOP/s, no sparsity), matched in order against
# torch.cuda.get_device_name(): the first entry whose every word appears in the name wins.
PEAK_BF16_FLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989.4e12),
    ("H100 PCIe", 756.0e12),
    ("H100 NVL", 835.0e12),
    ("H100", 989.4e12),  # SXM5 (e.g. "NVIDIA H100 80GB HBM3")
    ("A100", 312.0e12),
)


def peak_bf16_flops(device: torch.device) -> float | None:
    """Dense bf16 peak of a known CUDA device (see PEAK_BF16_FLOPS), else None."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    return peak_flops_for_name(torch.cuda.get_device_name(device))


def peak_flops_for_name(name: str) -> float | None:
    """The PEAK_BF16_FLOPS entry matching a CUDA device name, else None."""
    for key, flops in PEAK_BF16_FLOPS:
        if all(part in name for part in key.split()):
            return flops
    return None


def flops_per_token(cfg: GPTConfig, seq_len: int | None = None) -> float:
    """Training FLOPs per token (PaLM appendix B): 6·N + 12·L·d·T, N the parameters that take
    part in matrix products (all but the position embeddings; a tied embedding counted once)."""
    t = seq_len or cfg.context_len
    d, L, V, m = cfg.d_model, cfg.n_layer, cfg.vocab_size, cfg.mlp_width
    per_block = 4 * d * d + (3 if cfg.mlp == "swiglu" else 2) * d * m
    n = L * per_block + V * d
    return 6.0 * n + 12.0 * L * d * t


def mfu(tokens_per_s: float, flops_per_token: float, peak_flops: float, world_size: int = 1) -> float:
    """Model-FLOPs utilisation: the fraction of the peak of all `world_size` devices achieved."""
    return tokens_per_s * flops_per_token / (peak_flops * world_size)
