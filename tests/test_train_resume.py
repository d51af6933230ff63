"""Checkpoints: atomic layout, exact resume on CPU, clear errors for corrupted or mismatched ones."""

import json
from dataclasses import replace

import pytest
import torch

from gpt_model import GPTConfig
from gpt_model.checkpoint import load_model
from gpt_model.data import PackedDataset, synthetic_documents
from gpt_model.checkpoint import CheckpointError
from gpt_model.rundir import RunDir
from gpt_model.train import TrainConfig, Trainer


# dropout > 0: the RNG state must be restored too for the losses to match
MODEL = GPTConfig(n_layer=2, d_model=32, n_head=2, context_len=16, vocab_size=40, dropout=0.1)
TRAIN = TrainConfig(max_steps=8, batch_size=4, lr=3e-3, warmup_steps=2, eval_interval=4, eval_batches=2,
                    log_interval=1, checkpoint_interval=3, keep_checkpoints=5, progress=False)


def _data():
    docs = synthetic_documents(300, 40, seed=3)
    return (PackedDataset.from_documents(docs[:260], 16, bos_id=0, eos_id=1, pad_id=2),
            PackedDataset.from_documents(docs[260:], 16, bos_id=0, eos_id=1, pad_id=2, seed=None))


def _trainer(out, model_cfg=MODEL, train_cfg=TRAIN):
    train, val = _data()
    return Trainer(model_cfg, train_cfg, train, val, out)


class Crash(Exception):
    pass


def _metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _losses(run):
    return {r["step"]: (r["train_loss"], r.get("val_loss")) for r in _metrics(run) if "train_loss" in r}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    run = tmp_path_factory.mktemp("ref")
    trainer = _trainer(run)
    trainer.fit()
    return run, {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_layout_of_a_finished_run(reference):
    run, _ = reference
    assert [s for s, _ in RunDir(run).checkpoints()] == [3, 6, 8]
    ckpt = RunDir(run).latest_checkpoint()
    assert ckpt.name == "step_0000008"
    assert {p.name for p in ckpt.iterdir()} == {"model.safetensors", "config.json", "optimizer.pt",
                                               "rng_rank0.pt", "trainer_state.json"}
    assert not list((run / "checkpoints").glob(".*"))  # no temporary directory left
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["n_layer"] == 2 and config["train"]["max_steps"] == 8
    state = json.loads((ckpt / "trainer_state.json").read_text())
    assert state["step"] == 8 and state["n_skipped"] == 0
    # the checkpoint directory and the run directory both load as models
    assert load_model(ckpt).cfg == MODEL and load_model(run).cfg == MODEL


def test_resume_after_a_crash_reproduces_the_losses_exactly(tmp_path, reference):
    ref_run, ref_state = reference
    run = tmp_path / "run"

    def crash_at_7(trainer, rec):
        if trainer.step == 7:
            raise Crash

    with pytest.raises(Crash):
        _trainer(run).fit(on_step=crash_at_7)
    assert RunDir(run).latest_checkpoint().name == "step_0000006"  # steps 7.. were lost
    trainer = _trainer(run)
    result = trainer.fit(resume=True)
    assert result.status == "finished" and result.step == 8
    assert _losses(run) == _losses(ref_run)  # bit-identical, val losses included
    assert [r["step"] for r in _metrics(run) if "train_loss" in r] == list(range(1, 9))  # no duplicates
    for name, tensor in ref_state.items():
        assert torch.equal(trainer.model.state_dict()[name], tensor), name


def test_stop_request_checkpoints_then_resume_is_exact(tmp_path, reference):
    ref_run, _ = reference
    run = tmp_path / "run"

    def stop_at_4(trainer, rec):
        if trainer.step == 4:
            trainer.request_stop()

    result = _trainer(run).fit(on_step=stop_at_4)
    assert result.status == "interrupted" and result.step == 4
    assert RunDir(run).latest_checkpoint().name == "step_0000004"
    assert not (run / "model.safetensors").exists()  # the final model only when finished
    _trainer(run).fit(resume=True)
    assert _losses(run) == _losses(ref_run)


def test_existing_checkpoints_need_resume(tmp_path):
    run = tmp_path / "run"
    _trainer(run, train_cfg=replace(TRAIN, max_steps=3)).fit()
    with pytest.raises(ValueError, match="--resume"):
        _trainer(run).fit()


def _stopped_run(tmp_path):
    run = tmp_path / "run"
    _trainer(run, train_cfg=replace(TRAIN, max_steps=3)).fit()
    return run, RunDir(run).latest_checkpoint()


@pytest.mark.parametrize("victim, garbage, message", [
    ("model.safetensors", b"\x00not safetensors", "safetensors"),
    ("optimizer.pt", b"PK\x03\x04 truncated zip", "optimizer.pt"),
    ("trainer_state.json", b"{\"step\": 3,", "corrupted JSON"),
    ("rng_rank0.pt", None, "missing"),
])
def test_corrupted_checkpoint_gives_a_clear_error(tmp_path, victim, garbage, message):
    run, ckpt = _stopped_run(tmp_path)
    if garbage is None:
        (ckpt / victim).unlink()
    else:
        (ckpt / victim).write_bytes(garbage)
    with pytest.raises(CheckpointError, match=message) as err:
        _trainer(run).fit(resume=True)
    assert str(ckpt) in str(err.value)


def test_pickled_objects_are_refused(tmp_path):
    """weights_only loading: a checkpoint file carrying arbitrary Python objects is rejected."""
    run, ckpt = _stopped_run(tmp_path)
    torch.save({"state": {}, "param_groups": [], "payload": Crash()}, ckpt / "optimizer.pt")
    with pytest.raises(CheckpointError, match="unsafe"):
        _trainer(run).fit(resume=True)


def test_mismatched_model_config_is_refused(tmp_path):
    run, ckpt = _stopped_run(tmp_path)
    with pytest.raises(CheckpointError, match=r"another model config: d_model \(32 in the checkpoint, 64 now\)"):
        _trainer(run, model_cfg=replace(MODEL, d_model=64)).fit(resume=True)


def test_mismatched_data_order_is_refused(tmp_path):
    run, _ = _stopped_run(tmp_path)
    with pytest.raises(CheckpointError, match="batch_size"):
        _trainer(run, train_cfg=replace(TRAIN, batch_size=8)).fit(resume=True)
    train, val = _data()
    other = PackedDataset(train.inputs.flip(0), train.targets.flip(0))
    with pytest.raises(CheckpointError, match="training data differs"):
        Trainer(MODEL, TRAIN, other, val, run).fit(resume=True)


def test_a_crash_mid_write_leaves_the_previous_checkpoint_as_latest(tmp_path, monkeypatch):
    run = tmp_path / "run"
    trainer = _trainer(run, train_cfg=replace(TRAIN, max_steps=6))
    import gpt_model.checkpoint as checkpoint_module

    calls = {"n": 0}
    original = checkpoint_module.atomic_write_json

    def failing_write(path, data):
        if path.name == "trainer_state.json":
            calls["n"] += 1
            if calls["n"] == 2:  # the second checkpoint dies half-written
                raise OSError("disk full")
        return original(path, data)

    monkeypatch.setattr(checkpoint_module, "atomic_write_json", failing_write)
    with pytest.raises(OSError):
        trainer.fit()
    assert RunDir(run).latest_checkpoint().name == "step_0000003"
    assert (run / "checkpoints" / ".step_0000006.tmp").is_dir()  # the half-written one stays hidden
    monkeypatch.undo()
    _trainer(run, train_cfg=replace(TRAIN, max_steps=6)).fit(resume=True)  # cleans it up, resumes at 3
    assert not list((run / "checkpoints").glob(".*"))
    assert RunDir(run).latest_checkpoint().name == "step_0000006"
