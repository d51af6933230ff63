"""Data parallelism: 2 CPU processes under torchrun (gloo) match one process with the same global batch."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from gpt_model import GPTConfig
from gpt_model.checkpoint import load_weights
from gpt_model.data import PackedDataset, synthetic_documents
from gpt_model.model import GPT
from gpt_model.train import TrainConfig, Trainer


ROOT = Path(__file__).resolve().parents[1]
MODEL = GPTConfig(n_layer=2, d_model=32, n_head=2, context_len=16, vocab_size=40)

WORKER = textwrap.dedent("""
    import json, os, sys
    import torch
    from gpt_model import GPTConfig
    from gpt_model.data import PackedDataset, synthetic_documents
    from gpt_model.train import TrainConfig, Trainer

    torch.set_num_threads(1)
    out, batch, accum = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    docs = synthetic_documents(300, 40, seed=6, min_len=2, max_len=14)
    data = PackedDataset.from_documents(docs, 16, bos_id=0, eos_id=1, pad_id=2)
    cfg = TrainConfig(max_steps=4, batch_size=batch, grad_accum_steps=accum, lr=3e-3, warmup_steps=1,
                      eval_interval=0, log_interval=1, checkpoint_interval=2, progress=False)
    model = GPTConfig(n_layer=2, d_model=32, n_head=2, context_len=16, vocab_size=40)
    trainer = Trainer(model, cfg, data, None, out)
    result = trainer.fit()
    # one write per rank: the two processes share the pipe, and print() of several args interleaves
    sys.stdout.write(f"RANK {trainer.dist.rank} OF {trainer.dist.world_size} {result.status}\\n")
    sys.stdout.flush()
""")


def _single(out, batch, accum):
    docs = synthetic_documents(300, 40, seed=6, min_len=2, max_len=14)
    data = PackedDataset.from_documents(docs, 16, bos_id=0, eos_id=1, pad_id=2)
    cfg = TrainConfig(max_steps=4, batch_size=batch, grad_accum_steps=accum, lr=3e-3, warmup_steps=1,
                      eval_interval=0, log_interval=1, checkpoint_interval=2, progress=False)
    trainer = Trainer(MODEL, cfg, data, None, out)
    trainer.fit()
    return trainer


def _losses(run):
    return [r["train_loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
            if "train_loss" in r]


def test_two_processes_equal_one_with_the_same_global_batch(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    run = tmp_path / "ddp"
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    # 2 ranks × 2 rows × 2 accumulation micro-steps = a global batch of 8 rows
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", str(script), str(run), "2", "2"],
                          capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "RANK 0 OF 2 finished" in proc.stdout and "RANK 1 OF 2 finished" in proc.stdout

    single = _single(tmp_path / "single", 8, 1)
    ddp_model = load_weights(GPT(MODEL), run / "model.safetensors")
    for name, tensor in single.model.state_dict().items():
        # atol: the key bias's true gradient is 0, its float noise is scaled by Adam (see accumulation test)
        assert torch.allclose(ddp_model.state_dict()[name], tensor, atol=2e-5, rtol=1e-5), name
    assert torch.allclose(torch.tensor(_losses(run)), torch.tensor(_losses(tmp_path / "single")), atol=1e-5)
    # rank 0 alone wrote the run directory, with every rank's RNG state in the checkpoints
    config = json.loads((run / "config.json").read_text())
    assert config["distributed"]["world_size"] == 2
    ckpt = run / "checkpoints" / "step_0000004"
    assert (ckpt / "rng_rank0.pt").is_file() and (ckpt / "rng_rank1.pt").is_file()
    assert len(_losses(run)) == 4  # one record per step, not one per rank
