"""ModelInfo: what probes, the store and the dashboard need to know about a model, whatever the
backend. Its shape fields carry the names of ``gpt_model.GPTConfig`` (``n_layer``, ``n_head``,
``d_model``, ``vocab_size``, ``context_len``).

Compatibility: ``LEGACY_KEYS`` is the one place that maps older spellings of these fields, found
in files written by earlier versions (``results.json``'s ``"info"``, an activation store's
``index.json``), to today's; ``ModelInfo.from_dict`` and ``upgrade_info`` read through it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

# old key → current field
LEGACY_KEYS = {"d_vocab": "vocab_size"}


def upgrade_info(data: dict[str, Any]) -> dict[str, Any]:
    """A ModelInfo dict with legacy keys renamed (other keys kept as they are)."""
    return {LEGACY_KEYS.get(key, key): value for key, value in data.items()}


@dataclass(frozen=True)
class ModelInfo:
    name: str
    backend: str  # "native" | "tl" | "nnsight"
    source: str
    n_layer: int
    n_head: int
    d_model: int
    vocab_size: int
    context_len: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelInfo":
        """The inverse of to_dict; also reads legacy keys (see LEGACY_KEYS) and ignores keys it
        does not know (readers may have added some)."""
        data = upgrade_info(data)
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in data]
        if missing:
            raise ValueError(f"model info lacks {', '.join(missing)}: got keys {', '.join(sorted(data))}")
        return cls(**{n: data[n] for n in names})
