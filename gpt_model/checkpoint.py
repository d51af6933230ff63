"""Model weights on disk: safetensors only, written atomically, loaded with clear errors.

A run directory (DESIGN §3) looks like::

    runs/<name>/
        config.json          {"model": GPTConfig fields, "train": ..., "tokenizer": {...}, ...}
        model.safetensors    final weights
        tokenizer/           what the run was trained with (see config["tokenizer"])
        metrics.jsonl
        checkpoints/step_0000100/  model.safetensors, config.json, optimizer/RNG state

`load_model(path)` accepts a run directory or one of its checkpoint directories.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gpt_model.config import GPTConfig
from gpt_model.model import GPT

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(Path(path), (json.dumps(data, indent=2) + "\n").encode())


def weights_state_dict(model: GPT) -> dict[str, torch.Tensor]:
    """The state dict without the tied duplicate (safetensors refuses shared storage)."""
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if model.cfg.tie_embeddings:
        state.pop("unembed.weight", None)
    return state


def save_weights(model: GPT, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.cpu() for k, v in weights_state_dict(model).items()}, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run or checkpoint directory: no {CONFIG_FILE}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: invalid JSON ({err})") from err
    if "model" not in data:
        raise ValueError(f"{path}: no 'model' section")
    return data


def save_model(model: GPT, run_dir: str | Path, extra_config: dict[str, Any] | None = None) -> Path:
    """Write config.json (model config + `extra_config` sections) and model.safetensors."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {}
    if (run_dir / CONFIG_FILE).is_file():
        config = json.loads((run_dir / CONFIG_FILE).read_text())
    config.update(extra_config or {})
    config["model"] = model.cfg.to_dict()
    save_weights(model, run_dir / WEIGHTS_FILE)
    atomic_write_json(run_dir / CONFIG_FILE, config)
    return run_dir


def load_model(path: str | Path, device: str | torch.device = "cpu") -> GPT:
    """A GPT from a run directory or a checkpoint directory (config.json + model.safetensors)."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no run or checkpoint directory at {path}")
    cfg = GPTConfig.from_dict(read_config(path)["model"])
    model = GPT(cfg).to(device)
    load_weights(model, path / WEIGHTS_FILE)
    return model.eval()
