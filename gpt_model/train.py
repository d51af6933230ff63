"""The trainer: AdamW, warmup + cosine, clipping, accumulation, DDP, checkpoints that resume exactly.

    from gpt_model.train import RunConfig, train
    result = train(RunConfig(), "runs/demo")                # treebank generated into runs/demo/data

or, on prepared token data, ``Trainer(model_cfg, train_cfg, train_rows, val_rows, out_dir).fit()``.

One optimizer step = `grad_accum_steps` micro-batches of `batch_size` rows on each of the
W ranks. The loss of a step is the sum of the per-token losses over all of its micro-batches
and ranks divided by their number of counted tokens, so accumulation and data parallelism
give the gradient of one big batch (up to float summation order).

A run directory (DESIGN §3)::

    config.json            {"model", "train", "data", "tokenizer", ...}
    model.safetensors      final weights (written when the run finishes)
    metrics.jsonl          one JSON record per log step / evaluation / event
    results.json           final validation loss, entropy floor, agreement accuracy
    tokenizer/             vocab.json (word) or the BPE files
    checkpoints/step_0000200/
        model.safetensors  config.json  optimizer.pt  rng_rank0.pt …  trainer_state.json

Checkpoints are written to ``checkpoints/.step_X.tmp/`` and renamed; `--resume` continues
from the newest complete one. Optimizer and RNG state go through ``torch.save`` and are read
with ``torch.load(weights_only=True)``; everything else is JSON or safetensors.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from gpt_model.checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    atomic_write_json,
    load_weights,
    save_model,
    save_weights,
)
from gpt_model.config import GPTConfig
from gpt_model.data import IGNORE_INDEX, BatchSampler, DataConfig, PackedDataset
from gpt_model.distributed import (
    DistInfo,
    all_reduce_sum,
    barrier,
    device_for,
    env_dist_info,
    init_distributed,
    no_sync,
    wrap_model,
)
from gpt_model.evaluate import autocast_context, loss_sums
from gpt_model.model import GPT
from gpt_model.schedule import SCHEDULES, lr_at

CHECKPOINT_DIR = "checkpoints"
METRICS_FILE = "metrics.jsonl"
RESULTS_FILE = "results.json"
STATE_FILE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.pt"
CHECKPOINT_FORMAT = 1
DTYPES = ("auto", "float32", "bfloat16")

# Dense bf16 tensor-core peaks (FLOP/s, no sparsity), matched in order against
# torch.cuda.get_device_name(): the first entry whose every word appears in the name wins.
PEAK_BF16_FLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989.4e12),
    ("H100 PCIe", 756.0e12),
    ("H100 NVL", 835.0e12),
    ("H100", 989.4e12),  # SXM5 (e.g. "NVIDIA H100 80GB HBM3")
    ("A100", 312.0e12),
)


# =========================================================================== configuration
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


# =========================================================================== helpers
class TrainingDiverged(RuntimeError):
    """Too many consecutive steps with a non-finite loss or gradient."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from (corrupted, or for another config)."""


def resolve_device(name: str) -> torch.device:
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


def peak_bf16_flops(device: torch.device) -> float | None:
    """Dense bf16 peak of a known CUDA device (see PEAK_BF16_FLOPS), else None."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    return peak_flops_for_name(torch.cuda.get_device_name(device))


def peak_flops_for_name(name: str) -> float | None:
    for key, flops in PEAK_BF16_FLOPS:
        if all(part in name for part in key.split()):
            return flops
    return None


def flops_per_token(cfg: GPTConfig, seq_len: int | None = None) -> float:
    """Training FLOPs per token (PaLM appendix B): 6·N + 12·L·d·T, N the parameters that take
    part in matrix products (all but the position embeddings; a tied embedding counted once)."""
    t = seq_len or cfg.context_len
    d, L, V, m = cfg.d_model, cfg.n_layer, cfg.vocab_size, cfg.mlp_width
    per_block = 4 * d * d + (3 if cfg.mlp == "swiglu" else 2) * d * m
    n = L * per_block + V * d
    return 6.0 * n + 12.0 * L * d * t


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """nanoGPT's split: weight decay on every ≥2-D parameter (linear weights and embeddings,
    the tied embedding once), none on biases and norm gains (1-D)."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():  # named_parameters de-duplicates tied weights
        if not p.requires_grad:
            continue
        (decay if p.dim() >= 2 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay, "name": "decay"},
        {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"},
    ]


def build_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    # fused AdamW runs on CPU and CUDA in torch ≥ 2.4: one kernel for all parameters.
    return torch.optim.AdamW(
        param_groups(model, cfg.weight_decay),
        lr=cfg.lr,
        betas=(cfg.beta1, cfg.beta2),
        eps=cfg.adam_eps,
        fused=device.type in ("cpu", "cuda"),
    )


def checkpoint_name(step: int) -> str:
    return f"step_{step:07d}"


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run, oldest first (temporary directories are not listed)."""
    root = Path(run_dir) / CHECKPOINT_DIR
    out = []
    if root.is_dir():
        for p in root.iterdir():
            if p.is_dir() and p.name.startswith("step_") and p.name[5:].isdigit():
                out.append((int(p.name[5:]), p))
    return sorted(out)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    ckpts = list_checkpoints(run_dir)
    return ckpts[-1][1] if ckpts else None


def _fsync_dir_files(path: Path) -> None:
    for p in path.iterdir():
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())


def _config_diff(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    keys = sorted(set(a) | set(b))
    return [f"{k} ({a.get(k)!r} in the checkpoint, {b.get(k)!r} now)" for k in keys if a.get(k) != b.get(k)]


# =========================================================================== trainer
class LossSum(nn.Module):
    """tokens, targets → the summed next-token loss over the counted targets (fp32).

    The unit that is compiled and wrapped in DDP: with `torch.compile` the fp32 upcast and the
    cross-entropy over the vocabulary fuse with the model instead of running as separate
    memory-bound passes over the logits."""

    def __init__(self, model: GPT, amp_dtype: torch.dtype | None):
        super().__init__()
        self.model = model
        self.amp_dtype = amp_dtype

    def forward(self, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        with autocast_context(tokens.device, self.amp_dtype):
            logits = self.model(tokens)  # [b, t, V]
        return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX,
                               reduction="sum")


@dataclass
class TrainResult:
    status: str  # "finished" | "interrupted"
    step: int
    checkpoint: str | None
    n_skipped: int
    elapsed_s: float
    tokens_per_s: float
    last_val_loss: float | None = None
    final: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Trainer:
    """Trains a GPT on packed rows; see the module docstring for the run directory it writes."""

    def __init__(
        self,
        model_cfg: GPTConfig,
        cfg: TrainConfig,
        train_data: PackedDataset,
        val_data: PackedDataset | None,
        out_dir: str | Path,
        *,
        extra_config: dict[str, Any] | None = None,
        dist_info: DistInfo | None = None,
    ):
        if train_data.seq_len > model_cfg.context_len:
            raise ValueError(f"training rows of {train_data.seq_len} tokens exceed GPTConfig.context_len "
                             f"({model_cfg.context_len})")
        self.model_cfg, self.cfg = model_cfg, cfg
        self.train_data, self.val_data = train_data, val_data
        self.out_dir = Path(out_dir)
        self.extra_config = dict(extra_config or {})
        self.device = resolve_device(cfg.device)
        self.dist = dist_info or init_distributed(self.device.type)
        if self.device.type == "cuda":
            self.device = device_for("cuda", self.dist)
            torch.set_float32_matmul_precision("high")
        self.amp_dtype = resolve_amp_dtype(cfg.dtype, self.device)
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        self.sampler = BatchSampler(len(train_data), cfg.batch_size, seed=cfg.seed,
                                    world_size=self.dist.world_size, rank=self.dist.rank,
                                    grad_accum_steps=cfg.grad_accum_steps)
        torch.manual_seed(cfg.seed)  # same initial weights on every rank
        self.model = GPT(model_cfg).to(self.device)
        self.model.activation_checkpointing = cfg.activation_checkpointing
        self.optimizer = build_optimizer(self.model, cfg, self.device)
        torch.manual_seed(cfg.seed + 1 + self.dist.rank)  # dropout etc.: its own stream per rank
        self.step = 0
        self.n_skipped = 0
        self.consecutive_bad = 0
        self.tokens_seen = 0
        self.elapsed_s = 0.0
        self.last_val_loss: float | None = None
        self.data_fingerprint = train_data.fingerprint()
        self._stop_signal: int | None = None
        self._stop_requested = False
        self._train_model: nn.Module = LossSum(self.model, self.amp_dtype)
        self.peak_flops = peak_bf16_flops(self.device)
        self.flops_per_token = flops_per_token(model_cfg, train_data.seq_len)

    # ------------------------------------------------------------------ config
    def run_config(self) -> dict[str, Any]:
        config = {"model": self.model_cfg.to_dict(), "train": self.cfg.to_dict()}
        config.update(self.extra_config)
        config["distributed"] = {"world_size": self.dist.world_size}
        return config

    @property
    def tokens_per_step(self) -> int:
        return self.cfg.batch_size * self.cfg.grad_accum_steps * self.dist.world_size * self.train_data.seq_len

    def request_stop(self) -> None:
        """Stop after the current step, with a checkpoint (what SIGINT / SIGTERM do)."""
        self._stop_requested = True

    # ------------------------------------------------------------------ fit
    def fit(self, resume: bool = False,
            on_step: Callable[["Trainer", dict[str, Any]], None] | None = None) -> TrainResult:
        """Train to `max_steps` (or until stopped). `on_step(trainer, record)` runs after every
        step with that step's numbers (used by tests and notebooks)."""
        self._prepare_run_dir(resume)
        if self.cfg.compile:
            self._train_model = torch.compile(self._train_model)
        self._train_model = wrap_model(self._train_model, self.dist, self.device)
        handlers = self._install_signal_handlers()
        try:
            return self._loop(on_step)
        finally:
            self._restore_signal_handlers(handlers)

    def _loop(self, on_step: Callable | None) -> TrainResult:
        cfg, main = self.cfg, self.dist.is_main
        bar = None
        if main and cfg.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=cfg.max_steps, initial=self.step, desc="train", unit="step", dynamic_ncols=True)
        interval_loss, interval_n = 0.0, 0
        t_last, tokens_last = time.perf_counter(), self.tokens_seen
        t_start_session = time.perf_counter()
        elapsed_at_start = self.elapsed_s
        last_ckpt_step = self.step if self.step > 0 else -1
        status = "finished"
        try:
            while self.step < cfg.max_steps:
                rec = self._train_step()
                self.step += 1
                self.tokens_seen += self.tokens_per_step
                self.elapsed_s = elapsed_at_start + (time.perf_counter() - t_start_session)
                if rec["skipped"]:
                    self.n_skipped += 1
                    self.consecutive_bad += 1
                else:
                    self.consecutive_bad = 0
                    interval_loss += rec["train_loss"]
                    interval_n += 1
                stop = rec.pop("stop")

                log_now = self.step % cfg.log_interval == 0 or self.step == cfg.max_steps or rec["skipped"]
                if log_now:
                    now = time.perf_counter()
                    tps = (self.tokens_seen - tokens_last) / max(now - t_last, 1e-9)
                    t_last, tokens_last = now, self.tokens_seen
                    rec.update(train_loss_avg=interval_loss / interval_n if interval_n else None,
                               tokens_per_s=tps, tokens=self.tokens_seen, elapsed_s=self.elapsed_s,
                               n_skipped=self.n_skipped)
                    if self.peak_flops:
                        rec["mfu"] = tps * self.flops_per_token / (self.peak_flops * self.dist.world_size)
                    interval_loss, interval_n = 0.0, 0
                    if bar is not None:
                        bar.set_postfix(loss=f"{rec['train_loss']:.4f}", tok_s=f"{tps:,.0f}", refresh=False)
                if self.val_data is not None and (
                    (cfg.eval_interval and self.step % cfg.eval_interval == 0) or self.step == cfg.max_steps
                ):
                    t_eval = time.perf_counter()
                    rec["val_loss"] = self.last_val_loss = self.validation_loss()
                    t_last += time.perf_counter() - t_eval  # tokens/s counts training time only
                    if bar is not None:
                        bar.write(f"step {self.step}: val loss {rec['val_loss']:.4f}")
                if main and (log_now or "val_loss" in rec):
                    self._log(rec)
                if bar is not None:
                    bar.update(1)
                if on_step is not None:
                    on_step(self, rec)

                if self.consecutive_bad >= cfg.max_bad_steps:
                    self._diverged()
                stop = stop or self._stop_requested
                if (cfg.checkpoint_interval and self.step % cfg.checkpoint_interval == 0) or \
                        self.step == cfg.max_steps or stop:
                    t_ckpt = time.perf_counter()
                    self.save_checkpoint()
                    t_last += time.perf_counter() - t_ckpt
                    last_ckpt_step = self.step
                if stop:
                    status = "interrupted"
                    break
        finally:
            if bar is not None:
                bar.close()
        if status == "finished" and main:
            save_model(self.model, self.out_dir, self.run_config())
        if status == "interrupted" and main:
            why = signal.Signals(self._stop_signal).name if self._stop_signal else "request"
            self._log({"event": "interrupted", "signal": why, "step": self.step})
            print(f"stopped by {why} at step {self.step}; checkpoint "
                  f"{self.out_dir / CHECKPOINT_DIR / checkpoint_name(last_ckpt_step)}; "
                  f"continue with --resume", file=sys.stderr)
        barrier(self.dist)
        tps = self.tokens_seen / self.elapsed_s if self.elapsed_s > 0 else math.nan
        ckpt = latest_checkpoint(self.out_dir)
        return TrainResult(status=status, step=self.step, checkpoint=str(ckpt) if ckpt else None,
                           n_skipped=self.n_skipped, elapsed_s=self.elapsed_s, tokens_per_s=tps,
                           last_val_loss=self.last_val_loss)

    def _train_step(self) -> dict[str, Any]:
        cfg, model, data = self.cfg, self._train_model, self.train_data
        lr = lr_at(self.step, lr=cfg.lr, max_steps=cfg.max_steps, warmup_steps=cfg.warmup_steps,
                   min_lr_ratio=cfg.min_lr_ratio, schedule=cfg.lr_schedule)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        # Every rank knows every rank's rows: the global token count needs no communication.
        n_global = sum(data.n_targets(self.sampler.global_indices(self.step, m))
                       for m in range(cfg.grad_accum_steps))
        scale = self.dist.world_size / max(n_global, 1)  # DDP averages over ranks
        loss_sum = torch.zeros((), device=self.device)
        for micro in range(cfg.grad_accum_steps):
            x, y = data.batch(self.sampler.indices(self.step, micro))
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            with no_sync(model, micro < cfg.grad_accum_steps - 1):
                loss = model(x, y)  # summed over this micro-batch's counted targets
                (loss * scale).backward()
            loss_sum += loss.detach()

        rec: dict[str, Any] = {"step": self.step + 1, "lr": lr}
        if cfg.log_block_grad_norms and (self.step + 1) % cfg.log_interval == 0:
            rec["block_grad_norms"] = self.block_grad_norms()
        params = [p for p in self.model.parameters() if p.grad is not None]
        max_norm = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True)
        stop_flag = 1.0 if (self._stop_signal is not None or self._stop_requested) else 0.0
        stats = torch.stack([loss_sum.double(), torch.tensor(stop_flag, dtype=torch.float64, device=self.device)])
        stats = all_reduce_sum(stats, self.dist).cpu()
        train_loss = float(stats[0]) / max(n_global, 1)
        grad_norm = float(grad_norm)
        skipped = not (math.isfinite(train_loss) and math.isfinite(grad_norm))
        if not skipped:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        rec.update(train_loss=train_loss, grad_norm=grad_norm, skipped=skipped, stop=bool(stats[1] > 0))
        return rec

    @torch.no_grad()
    def block_grad_norms(self) -> list[float]:
        """L2 norm of each block's gradient (before clipping)."""
        out = []
        for block in self.model.blocks:
            grads = [p.grad for p in block.parameters() if p.grad is not None]
            out.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))) if grads else 0.0)
        return out

    def validation_loss(self) -> float:
        if self.val_data is None:
            raise ValueError("no validation data")
        total, count = loss_sums(self.model, self.val_data, batch_size=self.cfg.batch_size,
                                 max_batches=self.cfg.eval_batches or None, device=self.device,
                                 amp_dtype=self.amp_dtype, rank=self.dist.rank,
                                 world_size=self.dist.world_size)
        stats = all_reduce_sum(torch.tensor([total, float(count)], dtype=torch.float64, device=self.device),
                               self.dist).cpu()
        return float(stats[0] / stats[1]) if stats[1] > 0 else math.nan

    def _diverged(self) -> None:
        ckpt = latest_checkpoint(self.out_dir)
        where = (f"the last good checkpoint is {ckpt} (resume from it with a lower lr, e.g. "
                 f"--set train.lr=...)" if ckpt else "no checkpoint was written yet")
        msg = (f"training diverged: {self.consecutive_bad} consecutive steps (up to step {self.step}) had a "
               f"non-finite loss or gradient and were skipped ({self.n_skipped} skipped in all); {where}")
        if self.dist.is_main:
            self._log({"event": "diverged", "step": self.step, "n_skipped": self.n_skipped, "message": msg})
        raise TrainingDiverged(msg)

    # ------------------------------------------------------------------ signals
    def _install_signal_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        old = {}

        def handler(signum, frame):  # noqa: ARG001
            if self._stop_signal is not None:  # a second signal: stop now (checkpoints are atomic)
                raise KeyboardInterrupt
            self._stop_signal = signum

        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, handler)
        return old

    @staticmethod
    def _restore_signal_handlers(old: dict[int, Any]) -> None:
        for sig, h in old.items():
            signal.signal(sig, h)

    # ------------------------------------------------------------------ run dir, logging
    def _prepare_run_dir(self, resume: bool) -> None:
        ckpt_root = self.out_dir / CHECKPOINT_DIR
        if self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            if ckpt_root.is_dir():
                for p in ckpt_root.glob(".step_*.tmp"):  # left by a crash mid-write
                    shutil.rmtree(p, ignore_errors=True)
        barrier(self.dist)
        latest = latest_checkpoint(self.out_dir)
        if latest is not None and not resume:
            raise ValueError(f"{self.out_dir} already holds checkpoints (latest {latest.name}): pass "
                             f"--resume to continue that run, or choose another --out")
        if (self.out_dir / WEIGHTS_FILE).is_file() and not resume:
            raise ValueError(f"{self.out_dir} already holds a trained model: choose another --out")
        if resume and latest is not None:
            self.load_checkpoint(latest)
            if self.dist.is_main:
                self._truncate_metrics(self.step)
                self._log({"event": "resumed", "step": self.step, "checkpoint": latest.name})
        elif self.dist.is_main:
            if resume:
                print(f"--resume: no checkpoint in {ckpt_root}; starting from step 0", file=sys.stderr)
            (self.out_dir / METRICS_FILE).unlink(missing_ok=True)
        if self.dist.is_main:
            atomic_write_json(self.out_dir / CONFIG_FILE, self.run_config())
        barrier(self.dist)

    def _log(self, record: dict[str, Any]) -> None:
        """Append a record (non-finite numbers become null: metrics.jsonl stays strict JSON)."""
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        with open(self.out_dir / METRICS_FILE, "a") as f:
            f.write(json.dumps(clean) + "\n")

    def _truncate_metrics(self, step: int) -> None:
        """Drop records of steps after `step` (they are recomputed identically)."""
        path = self.out_dir / METRICS_FILE
        if not path.is_file():
            return
        kept = []
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash
            if rec.get("step", 0) <= step and rec.get("event") != "final":
                kept.append(line)
        tmp = path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        os.replace(tmp, path)

    # ------------------------------------------------------------------ checkpoints
    def trainer_state(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "step": self.step,
            "tokens_seen": self.tokens_seen,
            "n_skipped": self.n_skipped,
            "consecutive_bad": self.consecutive_bad,
            "elapsed_s": self.elapsed_s,
            "last_val_loss": self.last_val_loss,
            "world_size": self.dist.world_size,
            "data_fingerprint": self.data_fingerprint,
            "train_rows": len(self.train_data),
        }

    def save_checkpoint(self) -> Path:
        """Write checkpoints/step_X atomically: a hidden temporary directory, then a rename."""
        root = self.out_dir / CHECKPOINT_DIR
        name = checkpoint_name(self.step)
        final, tmp = root / name, root / f".{name}.tmp"
        if self.dist.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        barrier(self.dist)
        rng = {"cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        torch.save(rng, tmp / f"rng_rank{self.dist.rank}.pt")
        if self.dist.is_main:
            save_weights(self.model, tmp / WEIGHTS_FILE)
            torch.save(self.optimizer.state_dict(), tmp / OPTIMIZER_FILE)
            atomic_write_json(tmp / CONFIG_FILE, self.run_config())
        barrier(self.dist)
        if self.dist.is_main:
            atomic_write_json(tmp / STATE_FILE, self.trainer_state())
            _fsync_dir_files(tmp)
            if final.exists():  # the same step saved again (a stop right after a resume)
                trash = root / f".{name}.old"
                shutil.rmtree(trash, ignore_errors=True)
                os.rename(final, trash)
                os.rename(tmp, final)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                os.rename(tmp, final)
            for _, old in list_checkpoints(self.out_dir)[: -self.cfg.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
        barrier(self.dist)
        return final

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore weights, optimizer, RNG and counters; CheckpointError on anything amiss."""
        path = Path(path)
        state = self._read_json(path / STATE_FILE)
        config = self._read_json(path / CONFIG_FILE)
        if state.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{path}: checkpoint format {state.get('format')!r}, expected {CHECKPOINT_FORMAT}")
        diff = _config_diff(config.get("model", {}), self.model_cfg.to_dict())
        if diff:
            raise CheckpointError(f"{path} was written for another model config: " + "; ".join(diff))
        mine = self.cfg.to_dict()
        theirs = config.get("train", {})
        order = {k: theirs.get(k) for k in ("seed", "batch_size", "grad_accum_steps")}
        diff = _config_diff(order, {k: mine[k] for k in order})
        if state.get("world_size") != self.dist.world_size:
            diff.append(f"world_size ({state.get('world_size')} in the checkpoint, {self.dist.world_size} now)")
        if diff:
            raise CheckpointError(f"{path}: resuming needs the same data order as the run that wrote it; "
                                  f"these differ: " + "; ".join(diff))
        if state.get("data_fingerprint") != self.data_fingerprint:
            raise CheckpointError(f"{path}: the training data differs from the data of the run that wrote "
                                  f"this checkpoint (fingerprint {state.get('data_fingerprint')} vs "
                                  f"{self.data_fingerprint})")
        try:
            load_weights(self.model, path / WEIGHTS_FILE)
        except (ValueError, FileNotFoundError) as err:
            raise CheckpointError(f"cannot resume from {path}: {err}") from err
        opt_state = self._torch_load(path / OPTIMIZER_FILE)
        try:
            self.optimizer.load_state_dict(opt_state)
        except (ValueError, KeyError, RuntimeError, TypeError) as err:
            raise CheckpointError(f"{path / OPTIMIZER_FILE}: optimizer state does not fit this model ({err})") from err
        rng = self._torch_load(path / f"rng_rank{self.dist.rank}.pt")
        try:
            torch.set_rng_state(rng["cpu"])
            if self.device.type == "cuda" and "cuda" in rng:
                torch.cuda.set_rng_state(rng["cuda"], self.device)
        except (KeyError, TypeError, RuntimeError) as err:
            raise CheckpointError(f"{path}: unusable RNG state ({err})") from err
        try:
            self.step = int(state["step"])
            self.tokens_seen = int(state["tokens_seen"])
            self.n_skipped = int(state["n_skipped"])
            self.consecutive_bad = int(state["consecutive_bad"])
            self.elapsed_s = float(state["elapsed_s"])
            self.last_val_loss = state.get("last_val_loss")
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"{path / STATE_FILE}: missing or malformed field ({err})") from err

    @staticmethod
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

    def _torch_load(self, path: Path) -> Any:
        if not path.is_file():
            raise CheckpointError(f"incomplete checkpoint: {path} is missing")
        try:
            return torch.load(path, map_location=self.device, weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unpickling failure is a corrupted file
            raise CheckpointError(f"{path}: unreadable or unsafe checkpoint file ({type(err).__name__}: "
                                  f"{str(err).splitlines()[0] if str(err) else ''})") from err


# =========================================================================== the whole job
def train(
    config: RunConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    on_step: Callable[[Trainer, dict[str, Any]], None] | None = None,
    evaluate_at_end: bool = True,
) -> TrainResult:
    """Prepare the data (generating the treebank if needed), train, evaluate, write results.json."""
    from gpt_model.data import prepare_data
    from gpt_model.evaluate import summarize

    out_dir = Path(out_dir)
    device = resolve_device(config.train.device)
    info = init_distributed(device.type) if env_dist_info().enabled else DistInfo()
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    barrier(info)
    bundle = prepare_data(config.data, out_dir, config.model.context_len, seed=config.train.seed,
                          reuse_tokenizer=resume, is_main=info.is_main, wait=lambda: barrier(info))
    model_cfg = replace(config.model, vocab_size=len(bundle.tokenizer))
    data_section = config.data.to_dict()
    if config.data.source == "treebank":
        data_section["path"] = bundle.data_info["corpus_dir"]
    extra = {"data": data_section, "tokenizer": bundle.tokenizer_info,
             "data_info": {k: v for k, v in bundle.data_info.items() if k != "treebank_stats"}}
    trainer = Trainer(model_cfg, config.train, bundle.train, bundle.val, out_dir, extra_config=extra,
                      dist_info=info)
    result = trainer.fit(resume=resume, on_step=on_step)
    if result.status == "finished" and evaluate_at_end and info.is_main:
        t0 = time.perf_counter()
        final = summarize(trainer.model, bundle, device=trainer.device, batch_size=config.train.batch_size,
                          amp_dtype=trainer.amp_dtype)
        final.update(step=result.step, train_elapsed_s=result.elapsed_s, train_tokens_per_s=result.tokens_per_s,
                     n_skipped=result.n_skipped, eval_s=time.perf_counter() - t0,
                     unigram_entropy=_unigram(bundle, model_cfg.vocab_size))
        atomic_write_json(out_dir / RESULTS_FILE, final)
        trainer._log({"event": "final", **{k: v for k, v in final.items() if k != "agreement"},
                      **({"agreement_accuracy": final["agreement"]["accuracy"]} if "agreement" in final else {})})
        result.final = final
    barrier(info)
    return result


def _unigram(bundle: Any, vocab_size: int) -> float:
    from gpt_model.data import unigram_entropy

    return unigram_entropy(bundle.train, vocab_size)
