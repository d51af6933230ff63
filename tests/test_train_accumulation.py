"""Gradient accumulation: A micro-batches of B rows give the update of one batch of A·B rows."""

import torch

from gpt_model import GPTConfig
from gpt_model.data import PackedDataset, synthetic_documents
from gpt_model.train import TrainConfig, Trainer


def _run(tmp_path, batch_size, accum):
    docs = synthetic_documents(300, 40, seed=2, min_len=2, max_len=14)  # rows with different token counts
    data = PackedDataset.from_documents(docs, 16, bos_id=0, eos_id=1, pad_id=2)
    cfg = TrainConfig(max_steps=4, batch_size=batch_size, grad_accum_steps=accum, lr=3e-3, warmup_steps=1,
                      eval_interval=0, log_interval=1, checkpoint_interval=0, progress=False)
    trainer = Trainer(GPTConfig(n_layer=1, d_model=32, n_head=2, context_len=16, vocab_size=40), cfg, data,
                      None, tmp_path / f"b{batch_size}a{accum}")
    losses = []
    trainer.fit(on_step=lambda t, rec: losses.append(rec["train_loss"]))
    return trainer.model.state_dict(), losses


def test_accumulation_equals_a_larger_batch(tmp_path):
    big, big_losses = _run(tmp_path, 8, 1)
    for batch, accum in ((4, 2), (1, 8)):
        small, losses = _run(tmp_path, batch, accum)
        assert torch.allclose(torch.tensor(losses), torch.tensor(big_losses), atol=1e-5)
        # Tolerance: the key bias has an exactly-zero true gradient (softmax ignores it), so its
        # gradient is float noise that Adam scales up to ~lr-sized steps; all else agrees to 1e-6.
        for name, tensor in big.items():
            assert torch.allclose(small[name], tensor, atol=2e-5, rtol=1e-5), name
