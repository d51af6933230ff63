"""Gradient clipping: the optimizer sees a gradient of norm ≤ grad_clip; the log keeps the raw norm."""

import pytest
import torch

from gpt_model import GPTConfig
from gpt_model.data import PackedDataset, synthetic_documents
from gpt_model.train import TrainConfig, Trainer


def _trainer(tmp_path, grad_clip):
    docs = synthetic_documents(200, 40, seed=1)
    data = PackedDataset.from_documents(docs, 16, bos_id=0, eos_id=1, pad_id=2)
    cfg = TrainConfig(max_steps=3, batch_size=4, lr=1e-3, warmup_steps=0, grad_clip=grad_clip, eval_interval=0,
                      log_interval=1, checkpoint_interval=0, progress=False)
    return Trainer(GPTConfig(n_layer=1, d_model=32, n_head=2, context_len=16, vocab_size=40), cfg, data, None,
                   tmp_path)


def _spy_on_step(trainer):
    seen = []
    original = trainer.optimizer.step

    def step(*args, **kwargs):
        grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
        seen.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))
        return original(*args, **kwargs)

    trainer.optimizer.step = step
    return seen


@pytest.mark.parametrize("clip", [0.05, 0.0])
def test_clipping_bounds_the_gradient_the_optimizer_sees(tmp_path, clip):
    trainer = _trainer(tmp_path, clip)
    seen = _spy_on_step(trainer)
    records = []
    trainer.fit(on_step=lambda t, rec: records.append(rec))
    raw = [r["grad_norm"] for r in records]
    assert len(seen) == len(raw) == 3
    if clip:
        assert all(r > clip for r in raw)  # the raw norms are larger: clipping had work to do
        assert seen == pytest.approx([clip] * 3, rel=1e-4)
    else:  # 0 disables clipping
        assert seen == pytest.approx(raw, rel=1e-5)
