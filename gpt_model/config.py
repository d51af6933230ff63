"""GPTConfig: the shape and variant of a decoder-only GPT, validated at construction."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from corpus.durable import atomic_write_json

NORMS = ("layernorm", "rmsnorm")
LN_PLACEMENTS = ("pre", "post")
MLPS = ("gelu", "swiglu")
RESIDUALS = ("standard", "scaled_init", "deepnorm")


@dataclass(frozen=True)
class GPTConfig:
    n_layer: int = 4
    d_model: int = 128
    n_head: int = 4
    d_mlp: int | None = None  # None: 4·d_model for GELU, the parameter-matched 8/3·d_model for SwiGLU
    context_len: int = 128
    vocab_size: int = 512
    norm: str = "layernorm"
    ln_placement: str = "pre"
    mlp: str = "gelu"
    residual: str = "standard"
    tie_embeddings: bool = True
    bias: bool = True
    dropout: float = 0.0
    init_std: float = 0.02
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        for name in ("n_layer", "d_model", "n_head", "context_len", "vocab_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
        if self.d_mlp is not None and (not isinstance(self.d_mlp, int) or self.d_mlp < 1):
            raise ValueError(f"GPTConfig.d_mlp must be a positive integer or None, got {self.d_mlp!r}")
        if self.d_model % self.n_head != 0:
            raise ValueError(
                f"GPTConfig.d_model ({self.d_model}) must be divisible by GPTConfig.n_head ({self.n_head})"
            )
        for name, allowed in (
            ("norm", NORMS),
            ("ln_placement", LN_PLACEMENTS),
            ("mlp", MLPS),
            ("residual", RESIDUALS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"GPTConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.residual == "deepnorm" and self.ln_placement != "post":
            raise ValueError(
                "GPTConfig.residual='deepnorm' is a Post-LN scheme: set GPTConfig.ln_placement='post'"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if not self.init_std > 0:
            raise ValueError(f"GPTConfig.init_std must be positive, got {self.init_std!r}")
        if not self.norm_eps > 0:
            raise ValueError(f"GPTConfig.norm_eps must be positive, got {self.norm_eps!r}")
        for name in ("tie_embeddings", "bias"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"GPTConfig.{name} must be a bool, got {getattr(self, name)!r}")

    # Derived sizes. The TransformerLens-style aliases (n_layers, n_heads, ...) let
    # transformer_lens.ActivationCache helpers read `model.cfg` as they would a HookedTransformer's.
    @property
    def d_head(self) -> int:
        return self.d_model // self.n_head

    @property
    def mlp_width(self) -> int:
        if self.d_mlp is not None:
            return self.d_mlp
        if self.mlp == "swiglu":
            return 64 * math.ceil(8 * self.d_model / 3 / 64)
        return 4 * self.d_model

    @property
    def n_layers(self) -> int:
        return self.n_layer

    @property
    def n_heads(self) -> int:
        return self.n_head

    @property
    def n_ctx(self) -> int:
        return self.context_len

    @property
    def d_vocab(self) -> int:
        return self.vocab_size

    @property
    def attn_only(self) -> bool:
        return False

    @property
    def normalization_type(self) -> str | None:
        # Post-LN models have no final norm in front of the unembedding: TransformerLens's
        # "apply_ln" helpers must not re-normalise their residual stream.
        if self.ln_placement == "post":
            return None
        return "LN" if self.norm == "layernorm" else "RMS"

    @property
    def deepnorm_alpha(self) -> float:
        """Residual multiplier of DeepNorm's decoder: LN(α·x + f(x)), α = (2N)^¼."""
        return (2 * self.n_layer) ** 0.25 if self.residual == "deepnorm" else 1.0

    @property
    def deepnorm_beta(self) -> float:
        """Init gain of DeepNorm's decoder for FFN, v_proj and out_proj: β = (8N)^-¼."""
        return (8 * self.n_layer) ** -0.25

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GPTConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown GPTConfig field(s): {', '.join(unknown)}")
        return cls(**data)

    def save(self, path: str | Path) -> None:
        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "GPTConfig":
        data = json.loads(Path(path).read_text())
        return cls.from_dict(data.get("model", data))
