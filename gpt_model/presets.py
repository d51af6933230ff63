"""The model zoo: named GPT shapes. Training presets (issue: trainer) build on these.

`vocab_size` here is a placeholder for presets trained on our treebank: the trainer
replaces it with the size of the tokenizer it builds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from gpt_model.config import GPTConfig


@dataclass(frozen=True)
class ModelPreset:
    name: str
    description: str
    config: GPTConfig


MODEL_PRESETS: dict[str, ModelPreset] = {
    p.name: p
    for p in (
        ModelPreset(
            "demo",
            "CPU demo model for the built-in treebank (trains in minutes on 2 cores)",
            GPTConfig(n_layer=6, d_model=128, n_head=4, context_len=128, vocab_size=512),
        ),
        ModelPreset(
            "deep",
            "many narrow blocks, for Pre-LN / Post-LN / DeepNorm stability studies",
            GPTConfig(n_layer=48, d_model=64, n_head=4, context_len=64, vocab_size=512),
        ),
        ModelPreset(
            "gpu",
            "GPT-2-small shape, sized for one H100",
            GPTConfig(n_layer=12, d_model=768, n_head=12, context_len=1024, vocab_size=512),
        ),
        ModelPreset(
            "gpt2-small",
            "the shape of OpenAI's GPT-2 small (load its weights with gpt_model.load_gpt2)",
            GPTConfig(n_layer=12, d_model=768, n_head=12, context_len=1024, vocab_size=50257),
        ),
    )
}


def model_preset(name: str, **overrides: Any) -> GPTConfig:
    """The GPTConfig of a preset, with fields overridden (validated again)."""
    if name not in MODEL_PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(MODEL_PRESETS)}")
    return replace(MODEL_PRESETS[name].config, **overrides)
