"""The model zoo (named GPT shapes) and the training presets built on it.

`vocab_size` here is a placeholder for presets trained on our treebank: the trainer
replaces it with the size of the tokenizer it builds.

    stratascope train --preset demo --out runs/demo       # CPU, 2 cores, ≤ 10 minutes
    stratascope train --preset deep --out runs/deep --set model.ln_placement=post
    stratascope train --preset gpu --out runs/gpu         # one H100/H200 (300 steps: 51 s on an H200)
    stratascope train --preset deep-demo --out runs/deep-demo   # 12 blocks on the deep treebank, CPU ≤ 20 min
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from gpt_model.config import GPTConfig
from gpt_model.data import DataConfig
from gpt_model.run_config import RunConfig, TrainConfig


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
            GPTConfig(n_layer=6, d_model=128, n_head=4, context_len=64, vocab_size=512),
        ),
        ModelPreset(
            "deep-demo",
            "12 blocks for the deep treebank (corpus --grammar deep): CPU-trainable, twice the demo's depth",
            GPTConfig(n_layer=12, d_model=128, n_head=4, context_len=64, vocab_size=512),
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


@dataclass(frozen=True)
class TrainPreset:
    name: str
    description: str
    config: RunConfig


TRAIN_PRESETS: dict[str, TrainPreset] = {
    p.name: p
    for p in (
        TrainPreset(
            "demo",
            "CPU, 2 cores, ≤ 10 minutes: the treebank's demo model (near its entropy floor)",
            RunConfig(
                model=MODEL_PRESETS["demo"].config,
                # one thread: when other jobs share the 2 cores, two OpenMP threads stall each other
                # (measured ~4× slower than one); on a dedicated machine --threads 2 may be faster
                train=TrainConfig(max_steps=1000, batch_size=32, lr=2e-3, warmup_steps=100, min_lr_ratio=0.05,
                                  weight_decay=0.1, eval_interval=200, eval_batches=20, log_interval=25,
                                  checkpoint_interval=250, num_threads=1),
                data=DataConfig(source="treebank", tokenizer="word", n_sentences=100_000),
            ),
        ),
        TrainPreset(
            "deep-demo",
            "CPU, 2 cores, ≤ 20 minutes: 12 blocks on the deep treebank (center embedding, coordination, auxiliaries)",
            RunConfig(
                model=MODEL_PRESETS["deep-demo"].config,
                # the demo's recipe (batch, lr, schedule, one thread) with twice the blocks and more steps
                # 1,200 steps: 8.3 min measured at load average 4.9 on the 2 cores (2.4 steps/s; val loss
                # 1.0023x the floor, agreement 99.93%); 16 min at the slowest rate seen (1.27 steps/s)
                train=TrainConfig(max_steps=1200, batch_size=32, lr=2e-3, warmup_steps=100, min_lr_ratio=0.05,
                                  weight_decay=0.1, eval_interval=400, eval_batches=20, log_interval=25,
                                  checkpoint_interval=400, num_threads=1),
                data=DataConfig(source="treebank", tokenizer="word", n_sentences=100_000, grammar="deep"),
            ),
        ),
        TrainPreset(
            "deep",
            "48 narrow blocks for Pre-LN / Post-LN / DeepNorm comparisons (CPU-sized steps)",
            RunConfig(
                model=MODEL_PRESETS["deep"].config,
                train=TrainConfig(max_steps=300, batch_size=16, lr=1e-3, warmup_steps=50, eval_interval=100,
                                  eval_batches=10, log_interval=10, checkpoint_interval=0,
                                  log_block_grad_norms=True),
                data=DataConfig(source="treebank", tokenizer="word", n_sentences=10_000),
            ),
        ),
        TrainPreset(
            "gpu",
            "GPT-2-small shape on the treebank, bf16 + torch.compile, sized for one H100 (~10 minutes)",
            RunConfig(
                # 32 × 1024 tokens a step, ~65M tokens: about 2 minutes of steps at the 565-580k tokens/s
                # measured on an H200 (bench/RESULTS.md), plus treebank generation (1M sentences,
                # single-threaded CPU) and about 30 s of compilation
                model=replace(MODEL_PRESETS["gpu"].config, dropout=0.1),
                train=TrainConfig(max_steps=2000, batch_size=32, lr=6e-4, warmup_steps=100, weight_decay=0.1,
                                  eval_interval=250, eval_batches=10, log_interval=50, checkpoint_interval=500,
                                  compile=True),
                data=DataConfig(source="treebank", tokenizer="word", n_sentences=1_000_000),
            ),
        ),
        TrainPreset(
            "smoke",
            "seconds on CPU: a 2-block model on a small treebank, to check the pipeline",
            RunConfig(
                model=GPTConfig(n_layer=2, d_model=64, n_head=2, context_len=64, vocab_size=512),
                train=TrainConfig(max_steps=60, batch_size=16, lr=3e-3, warmup_steps=10, eval_interval=30,
                                  eval_batches=5, log_interval=10, checkpoint_interval=30),
                data=DataConfig(source="treebank", tokenizer="word", n_sentences=2_000),
            ),
        ),
    )
}


def train_preset(name: str) -> RunConfig:
    """The RunConfig (model + train + data) of a training preset."""
    if name not in TRAIN_PRESETS:
        raise ValueError(f"unknown training preset {name!r}; choose one of {', '.join(TRAIN_PRESETS)}")
    return TRAIN_PRESETS[name].config
