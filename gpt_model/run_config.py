"""What a training run is configured by: `TrainConfig`, `RunConfig` (model + train + data) and
the ``--set SECTION.FIELD=VALUE`` overrides, plus what the device and dtype strings mean.

    cfg = train_preset("demo").override(["model.n_layer=8", "train.lr=1e-3"])
    RunConfig.from_dict(json.loads(Path("my.json").read_text()), base=cfg)

Every field is validated when the dataclass is built: a bad value raises ValueError naming it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import torch

from gpt_model.config import GPTConfig
from gpt_model.data import DataConfig
from gpt_model.schedule import SCHEDULES

DTYPES = ("auto", "float32", "bfloat16")


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Every field is validated at construction (ValueError naming it)."""

    seed: int = 0
    max_steps: int = 1000
    batch_size: int = 32  # rows (sequences of context_len tokens) per micro-batch per rank
    grad_accum_steps: int = 1
    lr: float = 1e-3
    min_lr_ratio: float = 0.1  # cosine floor = lr · min_lr_ratio
    warmup_steps: int = 100
    lr_schedule: str = "cosine"  # "cosine" | "constant" (after the warmup)
    weight_decay: float = 0.1  # on ≥2-D parameters only (matrices, embeddings)
    beta1: float = 0.9
    beta2: float = 0.95
    adam_eps: float = 1e-8
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping
    eval_interval: int = 100  # steps between validation losses; 0: only at the end
    eval_batches: int = 20  # validation batches per evaluation; 0: the whole split
    log_interval: int = 10
    checkpoint_interval: int = 500  # steps between checkpoints; 0: only at the end / on a signal
    keep_checkpoints: int = 2  # newest checkpoints kept
    max_bad_steps: int = 10  # consecutive non-finite steps before the run stops
    device: str = "auto"  # "auto" (cuda if available, else cpu), "cpu", "cuda", "cuda:N"
    dtype: str = "auto"  # "auto": bf16 autocast on CUDA, fp32 on CPU; or "float32" / "bfloat16"
    compile: bool = False  # torch.compile the model
    activation_checkpointing: bool = False  # recompute each block in the backward pass
    log_block_grad_norms: bool = False  # per-block gradient norms in metrics.jsonl
    progress: bool = True  # tqdm progress bar
    num_threads: int = 0  # CPU intra-op threads per process (torch.set_num_threads); 0: torch's default

    def __post_init__(self) -> None:
        def integer(name: str, low: int) -> None:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"TrainConfig.{name} must be an integer ≥ {low}, got {value!r}")

        def number(name: str, low: float, high: float, low_open: bool = False, high_open: bool = False) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"TrainConfig.{name} must be a finite number, got {value!r}")
            if (value < low or (low_open and value == low)) or (value > high or (high_open and value == high)):
                lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
                raise ValueError(f"TrainConfig.{name} must be in {lo}{low}, {high}{hi}, got {value!r}")
            object.__setattr__(self, name, float(value))

        integer("seed", 0)
        for name in ("max_steps", "batch_size", "grad_accum_steps", "log_interval", "keep_checkpoints",
                     "max_bad_steps"):
            integer(name, 1)
        for name in ("warmup_steps", "eval_interval", "eval_batches", "checkpoint_interval", "num_threads"):
            integer(name, 0)
        number("lr", 0.0, 10.0, low_open=True)
        number("min_lr_ratio", 0.0, 1.0)
        number("weight_decay", 0.0, 10.0)
        number("beta1", 0.0, 1.0, high_open=True)
        number("beta2", 0.0, 1.0, high_open=True)
        number("adam_eps", 0.0, 1.0, low_open=True)
        number("grad_clip", 0.0, math.inf)
        if self.lr_schedule not in SCHEDULES:
            raise ValueError(f"TrainConfig.lr_schedule must be one of {SCHEDULES}, got {self.lr_schedule!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"TrainConfig.dtype must be one of {DTYPES}, got {self.dtype!r}")
        dev = self.device
        if not isinstance(dev, str) or not (
            dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())
        ):
            raise ValueError(f"TrainConfig.device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {dev!r}")
        for name in ("compile", "activation_checkpointing", "log_block_grad_norms", "progress"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"TrainConfig.{name} must be a bool, got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s): {', '.join(unknown)}")
        return cls(**data)


SECTIONS = {"model": GPTConfig, "train": TrainConfig, "data": DataConfig}
# Sections a run's config.json carries besides the three above; ignored when read back as a RunConfig.
DERIVED_SECTIONS = ("tokenizer", "data_info", "distributed", "preset")


@dataclass(frozen=True)
class RunConfig:
    """model + train + data: everything `stratascope train` needs."""

    model: GPTConfig = field(default_factory=GPTConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model.to_dict(), "train": self.train.to_dict(), "data": self.data.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: "RunConfig | None" = None) -> "RunConfig":
        """Sections present in `data` replace fields of `base` (defaults when None)."""
        if not isinstance(data, dict):
            raise ValueError("a run config must be a JSON object with 'model', 'train', 'data' sections")
        unknown = sorted(set(data) - set(SECTIONS) - set(DERIVED_SECTIONS))
        if unknown:
            raise ValueError(f"unknown config section(s): {', '.join(unknown)} "
                             f"(expected {', '.join(SECTIONS)})")
        base = base or cls()
        parts = {}
        for name, klass in SECTIONS.items():
            current = getattr(base, name)
            section = data.get(name, {})
            if not isinstance(section, dict):
                raise ValueError(f"config section {name!r} must be a JSON object")
            unknown = sorted(set(section) - {f.name for f in fields(klass)})
            if unknown:
                raise ValueError(f"unknown field(s) {', '.join(f'{name}.{u}' for u in unknown)}")
            coerced = {k: _coerce(klass, k, v, f"{name}.{k}") for k, v in section.items()}
            parts[name] = replace(current, **coerced)
        return cls(**parts)

    def override(self, assignments: list[str]) -> "RunConfig":
        """Apply ``section.field=value`` strings (value parsed as JSON, else taken as a string)."""
        updates: dict[str, dict[str, Any]] = {}
        for item in assignments:
            key, sep, raw = item.partition("=")
            section, dot, name = key.strip().partition(".")
            if not sep or not dot or not name:
                raise ValueError(f"--set expects SECTION.FIELD=VALUE (e.g. model.n_layer=8), got {item!r}")
            if section not in SECTIONS:
                raise ValueError(f"--set {item!r}: unknown section {section!r} (expected {', '.join(SECTIONS)})")
            updates.setdefault(section, {})[name] = _parse_value(raw.strip())
        return RunConfig.from_dict(updates, base=self)


def _parse_value(raw: str) -> Any:
    if raw.lower() in ("none", "null"):
        return None
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _coerce(klass: type, name: str, value: Any, label: str) -> Any:
    """JSON ints for float fields become floats; numbers for string fields become strings."""
    annotation = str({f.name: f.type for f in fields(klass)}.get(name, ""))
    if value is None or isinstance(value, bool):
        return value
    if annotation == "float" and isinstance(value, int):
        return float(value)
    if "str" in annotation and not isinstance(value, str) and isinstance(value, (int, float)):
        return str(value)
    return value


def resolve_device(name: str) -> torch.device:
    """TrainConfig.device as a torch device: "auto" is CUDA when available, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"TrainConfig.device is {name!r} but CUDA is not available on this machine")
    return dev


def resolve_amp_dtype(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: bf16 on CUDA by default, none (fp32) on CPU."""
    if name == "bfloat16" or (name == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None

