"""A decoder-only GPT of N independent blocks with TransformerLens hook points.

    from gpt_model import GPT, GPTConfig
    model = GPT(GPTConfig(n_layer=4, d_model=128, n_head=4, vocab_size=512))
"""

from gpt_model.config import GPTConfig
from gpt_model.generation import KVCache, sample_next
from gpt_model.gpt2_weights import load_gpt2, save_hf_gpt2
from gpt_model.model import GPT, MLP, Attention, Norm, TransformerBlock
from gpt_model.presets import MODEL_PRESETS, model_preset

__all__ = [
    "GPT",
    "GPTConfig",
    "TransformerBlock",
    "Attention",
    "MLP",
    "Norm",
    "KVCache",
    "sample_next",
    "load_gpt2",
    "save_hf_gpt2",
    "MODEL_PRESETS",
    "model_preset",
]
