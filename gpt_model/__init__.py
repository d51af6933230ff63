"""A decoder-only GPT of N independent blocks with TransformerLens hook points.

    from gpt_model import GPT, GPTConfig
    model = GPT(GPTConfig(n_layer=4, d_model=128, n_head=4, vocab_size=512))
"""

from gpt_model.checkpoint import CheckpointError
from gpt_model.config import GPTConfig
from gpt_model.data import DataConfig, PackedDataset
from gpt_model.evaluate import agreement_accuracy, evaluate_loss, evaluate_run
from gpt_model.generation import KVCache, sample_next
from gpt_model.gpt2_weights import load_gpt2, save_hf_gpt2
from gpt_model.model import GPT, MLP, Attention, Norm, TransformerBlock
from gpt_model.presets import MODEL_PRESETS, TRAIN_PRESETS, model_preset, train_preset
from gpt_model.run_config import RunConfig, TrainConfig
# `gpt_model.train` stays the module; the whole job is `gpt_model.train.train(run_config, out_dir)`.
from gpt_model.train import Trainer, TrainingDiverged

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
    "TRAIN_PRESETS",
    "train_preset",
    "DataConfig",
    "PackedDataset",
    "RunConfig",
    "TrainConfig",
    "Trainer",
    "TrainingDiverged",
    "CheckpointError",
    "evaluate_loss",
    "evaluate_run",
    "agreement_accuracy",
]
