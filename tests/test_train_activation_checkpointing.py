"""Activation checkpointing (recompute each block in the backward pass) changes memory, not results."""

import pytest
import torch

from gpt_model import GPTConfig
from gpt_model.data import PackedDataset, synthetic_documents
from gpt_model.train import TrainConfig, Trainer


def _counting(fn, calls):
    def wrapper(*args, **kwargs):
        calls.append(1)
        return fn(*args, **kwargs)

    return wrapper


def _run(tmp_path, checkpointing):
    docs = synthetic_documents(200, 40, seed=8)
    data = PackedDataset.from_documents(docs, 16, bos_id=0, eos_id=1, pad_id=2)
    cfg = TrainConfig(max_steps=3, batch_size=4, lr=3e-3, warmup_steps=0, eval_interval=0, checkpoint_interval=0,
                      activation_checkpointing=checkpointing, progress=False)
    trainer = Trainer(GPTConfig(n_layer=2, d_model=32, n_head=2, context_len=16, vocab_size=40), cfg, data, None,
                      tmp_path / str(checkpointing))
    calls = []
    for block in trainer.model.blocks:  # count MLP runs (forward hooks do not fire in the recompute)
        block.mlp.forward = _counting(block.mlp.forward, calls)
    losses = []
    trainer.fit(on_step=lambda t, rec: losses.append(rec["train_loss"]))
    return trainer, losses, len(calls)


def test_checkpointing_recomputes_blocks_and_gives_the_same_training(tmp_path):
    plain, plain_losses, plain_calls = _run(tmp_path, False)
    ckpt, ckpt_losses, ckpt_calls = _run(tmp_path, True)
    assert ckpt.model.activation_checkpointing and not plain.model.activation_checkpointing
    assert plain_calls == 3 * 2 and ckpt_calls == 2 * plain_calls  # each block runs again in backward
    assert ckpt_losses == pytest.approx(plain_losses, abs=1e-6)
    for (name, a), b in zip(plain.model.state_dict().items(), ckpt.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name
