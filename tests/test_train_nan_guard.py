"""Non-finite losses or gradients: the step is skipped and counted; M in a row stop the run."""

import json
import math

import pytest
import torch
from safetensors.torch import load_file, save_file

from gpt_model import GPTConfig
from gpt_model.checkpoint import load_model
from gpt_model.data import PackedDataset, synthetic_documents
from gpt_model.finite import NonFiniteWeightsError
from gpt_model.rundir import RunDir
from gpt_model.train import TrainConfig, Trainer, TrainingDiverged


def _trainer(out, **kw):
    docs = synthetic_documents(200, 40, seed=4)
    data = PackedDataset.from_documents(docs, 16, bos_id=0, eos_id=1, pad_id=2)
    cfg = TrainConfig(**{**dict(max_steps=8, batch_size=4, lr=1e-3, warmup_steps=0, eval_interval=0,
                                log_interval=4, checkpoint_interval=2, max_bad_steps=3, progress=False), **kw})
    return Trainer(GPTConfig(n_layer=1, d_model=32, n_head=2, context_len=16, vocab_size=40), cfg, data, None, out)


def _poison_forward(trainer, bad_steps):
    """NaN activations in block 0 on the given (1-based) steps."""

    def hook(module, args, output):
        if trainer.step + 1 in bad_steps:
            return output * float("nan")
        return output

    trainer.model.blocks[0].register_forward_hook(hook)


def _metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_nan_loss_skips_the_step_and_is_counted(tmp_path):
    trainer = _trainer(tmp_path / "run")
    _poison_forward(trainer, {3})
    snapshots = {}
    trainer.fit(on_step=lambda t, rec: snapshots.__setitem__(t.step, t.model.embed.weight.detach().clone()))
    assert trainer.n_skipped == 1
    assert torch.equal(snapshots[3], snapshots[2])  # no update on the poisoned step
    assert not torch.equal(snapshots[4], snapshots[3])  # training went on
    records = {r["step"]: r for r in _metrics(tmp_path / "run") if "step" in r and "skipped" in r}
    assert records[3]["skipped"] is True and records[3]["train_loss"] is None  # logged, as strict JSON
    assert records[8]["n_skipped"] == 1
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_an_infinite_gradient_with_a_finite_loss_is_skipped_too(tmp_path):
    trainer = _trainer(tmp_path / "run")
    weight = trainer.model.blocks[0].mlp.fc_in.weight
    weight.register_hook(lambda g: g * math.inf if trainer.step + 1 == 2 else g)
    records = []
    trainer.fit(on_step=lambda t, rec: records.append(rec))
    assert math.isfinite(records[1]["train_loss"]) and records[1]["skipped"]
    assert trainer.n_skipped == 1


def test_consecutive_bad_steps_stop_the_run_keeping_the_last_good_checkpoint(tmp_path):
    run = tmp_path / "run"
    trainer = _trainer(run, max_steps=20)
    _poison_forward(trainer, set(range(6, 100)))  # steps 6, 7, 8 → stop after the third
    with pytest.raises(TrainingDiverged, match="3 consecutive steps") as err:
        trainer.fit()
    ckpt = RunDir(run).latest_checkpoint()
    assert str(ckpt) in str(err.value)
    assert trainer.step == 8
    assert not (run / "model.safetensors").exists()
    model = load_model(ckpt)  # the last checkpoint holds finite, usable weights
    assert all(torch.isfinite(p).all() for p in model.parameters())
    events = [r for r in _metrics(run) if r.get("event") == "diverged"]
    assert len(events) == 1 and events[0]["n_skipped"] == 3
    # it can be resumed (e.g. with another lr) once the cause is gone
    fresh = _trainer(run, max_steps=20)
    fresh.load_checkpoint(ckpt)
    assert fresh.step == int(ckpt.name.split("_")[1])


def test_the_divergence_message_names_the_last_finite_checkpoint_not_a_poisoned_one(tmp_path):
    run = tmp_path / "run"
    trainer = _trainer(run, max_steps=20)
    _poison_forward(trainer, set(range(8, 100)))  # steps 8, 9, 10 → stop; checkpoints 2, 4, 6, 8

    def poison_the_newest_checkpoint(t, rec):
        if t.step == 9:  # step_0000008 was written; give it a NaN weight
            path = RunDir(run).checkpoint_dir(8) / "model.safetensors"
            state = load_file(path)
            state["blocks.0.mlp.fc_in.weight"][0, 0] = float("nan")
            save_file(state, path)

    with pytest.raises(TrainingDiverged) as err:
        trainer.fit(on_step=poison_the_newest_checkpoint)
    message = str(err.value)
    assert str(RunDir(run).checkpoint_dir(6)) in message
    assert "step_0000008" not in message
    with pytest.raises(NonFiniteWeightsError, match="blocks.0.mlp.fc_in.weight"):
        load_model(RunDir(run).checkpoint_dir(8))
