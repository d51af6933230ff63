"""The logit lens: read every layer's residual stream as if it were the last one.

For layer ℓ (0 = embeddings) and position t, ``logits_ℓ,t = unembed(ln_final(x_ℓ,t))``; at ℓ = L
this is the model's own output. Against the final distribution p = softmax(logits_L,t) (or the
model's logits when given):

* ``kl[ℓ, t]``    = KL(p ‖ p_ℓ) = Σ_v p(v) (log p(v) − log p_ℓ(v))   in nats (0 at ℓ = L)
* ``agree[ℓ, t]`` = [argmax p_ℓ = argmax p]                        (top-1 agreement)
* ``top_ids[ℓ, t]``, ``top_probs[ℓ, t]``: the k most probable next tokens under the lens.

Every position is a next-token prediction (``<bos>`` predicts the first word), so the layer
means ``kl_mean`` and ``agree_mean`` average over all positions given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class LogitLens:
    kl: np.ndarray  # [L + 1, t] nats
    agree: np.ndarray  # [L + 1, t] bool
    top_ids: np.ndarray  # [L + 1, t, k]
    top_probs: np.ndarray  # [L + 1, t, k]
    final_ids: np.ndarray  # [t]: argmax of the final distribution

    @property
    def kl_mean(self) -> np.ndarray:
        return self.kl.mean(axis=1)

    @property
    def agree_mean(self) -> np.ndarray:
        return self.agree.mean(axis=1)


def logit_lens(resid: Any, unembed: Callable[[torch.Tensor], torch.Tensor], *, final_logits: Any = None,
               k: int = 5) -> LogitLens:
    """The logit lens of one sentence.

    resid: [n_layer + 1, t, d] (numpy or torch); unembed: maps [..., d] → logits [..., V] (final
    norm then unembedding; ``native_unembed(model)`` for our GPT); final_logits: [t, V], the
    reference distribution (default: the lens at the last layer).
    """
    x = torch.as_tensor(np.asarray(resid) if not isinstance(resid, torch.Tensor) else resid)
    if x.ndim != 3:
        raise ValueError(f"resid must be [n_layer + 1, positions, d_model], got shape {tuple(x.shape)}")
    with torch.no_grad():
        logits = unembed(x.float()).double()  # [L+1, t, V]
        logp = torch.log_softmax(logits, dim=-1)
        if final_logits is None:
            ref = logp[-1]
        else:
            ref = torch.log_softmax(torch.as_tensor(np.asarray(final_logits) if not isinstance(final_logits, torch.Tensor)
                                                    else final_logits).double(), dim=-1)
        p = ref.exp()
        kl = (p * (ref - logp)).sum(-1).clamp_min(0.0)  # [L+1, t]
        final_ids = ref.argmax(-1)
        agree = logp.argmax(-1) == final_ids
        k = min(k, logits.shape[-1])
        top_p, top_i = logp.exp().topk(k, dim=-1)
    return LogitLens(kl=kl.numpy(), agree=agree.numpy(), top_ids=top_i.numpy(), top_probs=top_p.numpy(),
                     final_ids=final_ids.numpy())


def native_unembed(model: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x ↦ model.unembed(model.ln_final(x))`` for our GPT (and GPT-2 loaded into it).

    Call it under the model's lock (``hooks.lock_for(model)``): it runs the model's modules.
    """
    if not (hasattr(model, "ln_final") and hasattr(model, "unembed")):
        raise ValueError(f"no logit lens for {type(model).__name__}: it needs ln_final and unembed")
    param = next(model.parameters())

    def unembed(x: torch.Tensor) -> torch.Tensor:
        x = x.to(device=param.device, dtype=param.dtype)
        return model.unembed(model.ln_final(x)).float().cpu()

    return unembed
