"""Model weights and trainer checkpoints on disk: the file formats, written durably, read back
with errors that name the file.

Weights are safetensors only. A run directory (or one of its checkpoint directories) holds
``config.json`` + ``model.safetensors``, so ``load_model(path)`` accepts either. A trainer
checkpoint ``checkpoints/step_N/`` adds ``optimizer.pt`` and ``rng_rank<r>.pt`` (``torch.save``,
read back with ``torch.load(weights_only=True)``) and ``trainer_state.json`` (counters, format,
data fingerprint). Where each file lives is ``gpt_model.rundir.RunDir``'s business; how every
file is written whole is ``corpus.durable``'s: a checkpoint is written into a hidden temporary
directory and published with ``commit_dir``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

# atomic_write_bytes / atomic_write_json are re-exported: hooks.store imports them from here.
from corpus.durable import atomic_write_bytes, atomic_write_json, atomic_write_with, commit_dir
from gpt_model.config import GPTConfig
from gpt_model.distributed import DistInfo, barrier
from gpt_model.finite import NonFiniteWeightsError, check_finite_weights, first_nonfinite
from gpt_model.model import GPT
from gpt_model.rundir import CONFIG_FILE, WEIGHTS_FILE, RunDir

__all__ = [
    "CONFIG_FILE", "WEIGHTS_FILE", "STATE_FILE", "OPTIMIZER_FILE", "CHECKPOINT_FORMAT", "CheckpointError",
    "atomic_write_bytes", "atomic_write_json", "weights_state_dict", "save_weights", "load_weights",
    "read_config", "save_model", "load_model", "save_trainer_checkpoint", "load_trainer_checkpoint",
    "last_finite_checkpoint", "check_resume_config",
]

STATE_FILE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.pt"
CHECKPOINT_FORMAT = 1
# trainer_state.json counters restored on resume, with their types
COUNTERS: tuple[tuple[str, type], ...] = (
    ("step", int), ("tokens_seen", int), ("n_skipped", int), ("consecutive_bad", int), ("elapsed_s", float))


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from (corrupted, or for another config)."""


# =========================================================================== weights
def weights_state_dict(model: GPT) -> dict[str, torch.Tensor]:
    """The state dict without the tied duplicate (safetensors refuses shared storage)."""
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if model.cfg.tie_embeddings:
        state.pop("unembed.weight", None)
    return state


def save_weights(model: GPT, path: str | Path) -> None:
    state = {k: v.cpu() for k, v in weights_state_dict(model).items()}
    atomic_write_with(path, lambda tmp: save_file(state, str(tmp)))


def load_weights(model: GPT, path: str | Path) -> GPT:
    """Load safetensors weights into `model`; any missing, unexpected or mis-shaped tensor
    raises ValueError naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    try:
        state = load_file(str(path), device=str(model.device))
    except SafetensorError as err:
        raise ValueError(f"{path}: not a readable safetensors file ({err})") from err
    expected = weights_state_dict(model)
    for name, tensor in state.items():
        if name not in expected:
            raise ValueError(f"{path}: unexpected tensor {name!r} for this model config")
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise ValueError(
                f"{path}: tensor {name!r} has shape {tuple(tensor.shape)}, the model config "
                f"expects {tuple(expected[name].shape)}"
            )
    missing = sorted(set(expected) - set(state))
    if missing:
        raise ValueError(f"{path}: missing tensor(s) {', '.join(missing[:5])}")
    model.load_state_dict(state, strict=not model.cfg.tie_embeddings)
    return model


def read_config(run_dir: str | Path) -> dict[str, Any]:
    """config.json of a run or checkpoint directory; it must have a "model" section."""
    run = RunDir(run_dir)
    if not run.config_path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run or checkpoint directory: no {CONFIG_FILE}")
    data = run.read_config()
    if not isinstance(data, dict) or "model" not in data:
        raise ValueError(f"{run.config_path}: no 'model' section")
    return data


def save_model(model: GPT, run_dir: str | Path, extra_config: dict[str, Any] | None = None) -> Path:
    """Write config.json (model config + `extra_config` sections) and model.safetensors."""
    run = RunDir(run_dir)
    run.path.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = run.read_config() if run.config_path.is_file() else {}
    config.update(extra_config or {})
    config["model"] = model.cfg.to_dict()
    save_weights(model, run.weights_path)
    atomic_write_json(run.config_path, config)
    return run.path


def load_model(path: str | Path, device: str | torch.device = "cpu", *, allow_nonfinite: bool = False) -> GPT:
    """A GPT from a run directory or a checkpoint directory (config.json + model.safetensors).
    Weights holding NaN/inf are refused (NonFiniteWeightsError naming the tensor) unless
    `allow_nonfinite`."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no run or checkpoint directory at {path}")
    cfg = GPTConfig.from_dict(read_config(path)["model"])
    model = GPT(cfg).to(device)
    weights = RunDir(path).weights_path
    load_weights(model, weights)
    check_finite_weights(weights_state_dict(model), str(weights), allow_nonfinite=allow_nonfinite)
    return model.eval()


# =========================================================================== trainer checkpoints
def save_trainer_checkpoint(run: RunDir, step: int, *, model: GPT, optimizer: torch.optim.Optimizer,
                            config: dict[str, Any], state: dict[str, Any], keep: int, dist: DistInfo,
                            device: torch.device) -> Path:
    """Write checkpoints/step_N: the main rank empties a hidden temporary directory, every rank
    adds its RNG state, the main rank adds weights, optimizer state, config.json and, last,
    trainer_state.json, then publishes it (replacing a checkpoint of the same step) and deletes
    all but the newest `keep`. Every rank must call it.

    Weights holding NaN/inf are never written: NonFiniteWeightsError naming the tensor, before
    anything is touched (every rank holds the same weights, so every rank raises). So the newest
    checkpoint is always finite and the rotation never deletes the last finite one."""
    found = first_nonfinite(weights_state_dict(model).items())
    if found is not None:
        name, n_bad, numel = found
        raise NonFiniteWeightsError(f"checkpoint of step {step} not written: weight {name!r} holds {n_bad} "
                                    f"NaN/inf value(s) of {numel}")
    tmp = run.checkpoint_tmp_dir(step)
    if dist.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    barrier(dist)
    rng = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    torch.save(rng, tmp / _rng_file(dist.rank))
    if dist.is_main:
        save_weights(model, tmp / WEIGHTS_FILE)
        torch.save(optimizer.state_dict(), tmp / OPTIMIZER_FILE)
        atomic_write_json(tmp / CONFIG_FILE, config)
    barrier(dist)
    if dist.is_main:
        atomic_write_json(tmp / STATE_FILE, state)
        commit_dir(tmp, run.checkpoint_dir(step))
        for _, old in run.checkpoints()[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    barrier(dist)
    return run.checkpoint_dir(step)


def load_trainer_checkpoint(path: Path, *, model: GPT, optimizer: torch.optim.Optimizer,
                            model_config: dict[str, Any], train_config: dict[str, Any], data_fingerprint: str,
                            dist: DistInfo, device: torch.device) -> dict[str, Any]:
    """Check that checkpoint `path` fits this run, restore weights, optimizer and this rank's RNG
    state, and return the trainer's counters; CheckpointError naming the file on anything amiss."""
    state, config = _read_trainer_state(path)
    _check_resumable(path, state, config, model_config=model_config, train_config=train_config,
                     world_size=dist.world_size, data_fingerprint=data_fingerprint)
    _restore_weights(model, path)
    _restore_optimizer(optimizer, path, device)
    _restore_rng(path, dist.rank, device)
    return _read_counters(path, state)


def _rng_file(rank: int) -> str:
    return f"rng_rank{rank}.pt"


def _read_trainer_state(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(trainer_state.json, config.json) of a checkpoint; CheckpointError when missing,
    corrupted or of another format."""
    state = _read_json(path / STATE_FILE)
    config = _read_json(path / CONFIG_FILE)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {state.get('format')!r}, expected {CHECKPOINT_FORMAT}")
    return state, config


def check_resume_config(path: Path, *, model_config: dict[str, Any], train_config: dict[str, Any],
                        data_config: dict[str, Any], world_size: int) -> None:
    """Before any data work (generating a treebank, training a tokenizer): CheckpointError when
    checkpoint `path` was written for another model shape, data order, data source or
    tokenizer kind. The vocabulary size and the data themselves are checked when the checkpoint
    is loaded, once the data are ready."""
    state, config = _read_trainer_state(path)
    ignore = {"vocab_size"}  # set from the tokenizer, which a resumed run reloads
    _check_shape_and_order(path, state, config, world_size=world_size, train_config=train_config,
                           model_config={k: v for k, v in model_config.items() if k not in ignore},
                           theirs_model={k: v for k, v in config.get("model", {}).items() if k not in ignore})
    theirs = config.get("data", {})
    keys = ("source", "tokenizer")
    diff = _config_diff({k: theirs.get(k) for k in keys}, {k: data_config.get(k) for k in keys})
    if diff:
        raise CheckpointError(f"{path} was written for other training data: " + "; ".join(
            f"data.{d}" for d in diff))


def _check_shape_and_order(path: Path, state: dict[str, Any], config: dict[str, Any], *,
                           model_config: dict[str, Any], theirs_model: dict[str, Any],
                           train_config: dict[str, Any], world_size: int) -> None:
    diff = _config_diff(theirs_model, model_config)
    if diff:
        raise CheckpointError(f"{path} was written for another model config: " + "; ".join(diff))
    theirs = config.get("train", {})
    order = {k: theirs.get(k) for k in ("seed", "batch_size", "grad_accum_steps")}
    diff = _config_diff(order, {k: train_config[k] for k in order})
    if state.get("world_size") != world_size:
        diff.append(f"world_size ({state.get('world_size')} in the checkpoint, {world_size} now)")
    if diff:
        raise CheckpointError(f"{path}: resuming needs the same data order as the run that wrote it; "
                              f"these differ: " + "; ".join(diff))


def _check_resumable(path: Path, state: dict[str, Any], config: dict[str, Any], *, model_config: dict[str, Any],
                     train_config: dict[str, Any], world_size: int, data_fingerprint: str) -> None:
    """CheckpointError naming every difference that would make the resumed run differ from the
    one that wrote the checkpoint: model config, data order, training data."""
    _check_shape_and_order(path, state, config, model_config=model_config, theirs_model=config.get("model", {}),
                           train_config=train_config, world_size=world_size)
    if state.get("data_fingerprint") != data_fingerprint:
        raise CheckpointError(f"{path}: the training data differs from the data of the run that wrote "
                              f"this checkpoint (fingerprint {state.get('data_fingerprint')} vs "
                              f"{data_fingerprint})")


def _restore_weights(model: GPT, path: Path) -> None:
    """Load a checkpoint's weights; unreadable, mis-shaped or non-finite ones are a CheckpointError."""
    try:
        load_weights(model, path / WEIGHTS_FILE)
    except (ValueError, FileNotFoundError) as err:
        raise CheckpointError(f"cannot resume from {path}: {err}") from err
    found = first_nonfinite(weights_state_dict(model).items())
    if found is not None:
        raise CheckpointError(f"cannot resume from {path}: weight {found[0]!r} holds {found[1]} NaN/inf value(s); "
                              f"resume from an older checkpoint")


def _restore_optimizer(optimizer: torch.optim.Optimizer, path: Path, device: torch.device) -> None:
    opt_state = _torch_load(path / OPTIMIZER_FILE, device)
    try:
        optimizer.load_state_dict(opt_state)
    except (ValueError, KeyError, RuntimeError, TypeError) as err:
        raise CheckpointError(f"{path / OPTIMIZER_FILE}: optimizer state does not fit this model ({err})") from err


def _restore_rng(path: Path, rank: int, device: torch.device) -> None:
    rng = _torch_load(path / _rng_file(rank), device)
    try:
        torch.set_rng_state(rng["cpu"])
        if device.type == "cuda" and "cuda" in rng:
            torch.cuda.set_rng_state(rng["cuda"], device)
    except (KeyError, TypeError, RuntimeError) as err:
        raise CheckpointError(f"{path}: unusable RNG state ({err})") from err


def _read_counters(path: Path, state: dict[str, Any]) -> dict[str, Any]:
    """The trainer's counters (step, tokens_seen, …, last_val_loss) from trainer_state.json."""
    try:
        counters = {name: kind(state[name]) for name, kind in COUNTERS}
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path / STATE_FILE}: missing or malformed field ({err})") from err
    counters["last_val_loss"] = state.get("last_val_loss")
    return counters


def last_finite_checkpoint(run: RunDir) -> Path | None:
    """The newest checkpoint whose weights are readable and all finite (None if there is none)."""
    for _, ckpt in reversed(run.checkpoints()):
        try:
            state = load_file(str(ckpt / WEIGHTS_FILE))
        except (SafetensorError, OSError):
            continue
        if first_nonfinite(state.items()) is None:
            return ckpt
    return None


def _config_diff(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    keys = sorted(set(a) | set(b))
    return [f"{k} ({a.get(k)!r} in the checkpoint, {b.get(k)!r} now)" for k in keys if a.get(k) != b.get(k)]


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"incomplete checkpoint: {path} is missing")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: corrupted JSON ({err})") from err
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return data


def _torch_load(path: Path, device: torch.device) -> Any:
    if not path.is_file():
        raise CheckpointError(f"incomplete checkpoint: {path} is missing")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure is a corrupted file
        raise CheckpointError(f"{path}: unreadable or unsafe checkpoint file ({_load_error(err)})") from err


def _load_error(err: Exception) -> str:
    """torch.load's error in one line, without its advice to retry with weights_only=False."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if lines and lines[0].startswith("Weights only load failed"):
        why = next((line.split("error:", 1)[1].strip() for line in lines if "WeightsUnpickler error:" in line),
                   "not plain tensors")
        return f"it holds Python objects that are not plain tensors, refused: {why.split('. ')[0]}"
    return f"{type(err).__name__}: {lines[0] if lines else ''}"
