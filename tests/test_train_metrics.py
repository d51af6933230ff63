"""metrics.jsonl contents, model-FLOPs utilisation bookkeeping and the peak-FLOPs table."""

import json

import pytest

from gpt_model import GPT, GPTConfig
from gpt_model.data import PackedDataset, synthetic_documents
from gpt_model.flops import flops_per_token, peak_flops_for_name
from gpt_model.train import TrainConfig, Trainer


@pytest.mark.parametrize("name, peak", [
    ("NVIDIA H100 80GB HBM3", 989.4e12), ("NVIDIA H100 PCIe", 756e12), ("NVIDIA H100 NVL", 835e12),
    ("NVIDIA H200", 989.4e12), ("NVIDIA A100-SXM4-80GB", 312e12), ("NVIDIA A100 80GB PCIe", 312e12),
    ("NVIDIA GeForce RTX 4090", None), ("Tesla T4", None),
])
def test_peak_bf16_table(name, peak):
    assert peak_flops_for_name(name) == peak


def test_flops_per_token_counts_the_matmul_parameters():
    cfg = GPTConfig(n_layer=3, d_model=64, n_head=4, context_len=32, vocab_size=100)
    model = GPT(cfg)
    matmul_params = model.num_params() - model.pos_embed.weight.numel()
    matmul_params -= sum(p.numel() for n, p in model.named_parameters() if p.dim() < 2)  # biases, norms
    assert flops_per_token(cfg) == 6 * matmul_params + 12 * 3 * 64 * 32


def test_metrics_records_and_mfu_when_the_peak_is_known(tmp_path):
    docs = synthetic_documents(100, 40, seed=7)
    data = PackedDataset.from_documents(docs, 16, bos_id=0, eos_id=1, pad_id=2)
    cfg = TrainConfig(max_steps=4, batch_size=4, warmup_steps=1, eval_interval=2, log_interval=2,
                      checkpoint_interval=0, log_block_grad_norms=True, progress=False)
    trainer = Trainer(GPTConfig(n_layer=3, d_model=32, n_head=2, context_len=16, vocab_size=40), cfg, data, data,
                      tmp_path)
    assert trainer.peak_flops is None  # CPU: unknown peak, no MFU
    trainer.peak_flops = 1e12  # pretend a known device
    trainer.fit()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]
    for r in records:
        assert {"train_loss", "train_loss_avg", "val_loss", "lr", "grad_norm", "tokens_per_s", "tokens",
                "elapsed_s", "n_skipped", "mfu"} <= set(r)
        assert r["mfu"] == pytest.approx(r["tokens_per_s"] * trainer.flops_per_token / 1e12)
        assert len(r["block_grad_norms"]) == 3 and all(g > 0 for g in r["block_grad_norms"])
    assert records[-1]["tokens"] == 4 * 4 * 16
