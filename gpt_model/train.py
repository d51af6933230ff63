"""The training loop: AdamW, warmup + cosine, clipping, accumulation, DDP, exact resume.

    from gpt_model.train import RunConfig, train
    result = train(RunConfig(), "runs/demo")                # treebank generated into runs/demo/data

or, on prepared token data, ``Trainer(model_cfg, train_cfg, train_rows, val_rows, out_dir).fit()``.

One optimizer step = `grad_accum_steps` micro-batches of `batch_size` rows on each of the
W ranks. The loss of a step is the sum of the per-token losses over all of its micro-batches
and ranks divided by their number of counted tokens, so accumulation and data parallelism
give the gradient of one big batch (up to float summation order).

Configs, FLOPs/MFU, checkpoint files, metrics.jsonl and the run directory's rules have their
own modules (docs/training.md, "Module layout"); ``__all__`` keeps their old names importable here.
"""

from __future__ import annotations

import math
import shutil
import signal
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, NoReturn

import torch
from torch import nn

from corpus.durable import atomic_write_json
from gpt_model.checkpoint import (CHECKPOINT_FORMAT, CheckpointError, check_resume_config, last_finite_checkpoint,
                                  load_trainer_checkpoint, save_model, save_trainer_checkpoint)
from gpt_model.config import GPTConfig
from gpt_model.data import BatchSampler, PackedDataset
from gpt_model.distributed import (DistInfo, all_reduce_sum, barrier, device_for, env_dist_info, init_distributed,
                                   no_sync, wrap_model)
from gpt_model.evaluate import loss_sums
from gpt_model.finite import NonFiniteWeightsError
from gpt_model.flops import flops_per_token, mfu, peak_bf16_flops
from gpt_model.metrics import IntervalMeter, append_record, final_event, truncate_after
from gpt_model.model import GPT
from gpt_model.optim import LossSum, build_optimizer, param_groups
from gpt_model.preflight import check_run_config, check_threads
from gpt_model.progress import ProgressBar
from gpt_model.run_config import RunConfig, TrainConfig, resolve_amp_dtype, resolve_device
from gpt_model.run_writer import check_out_dir, discard_failed_start, first_missing_dir, lock_run_dir, resume_point
from gpt_model.rundir import RunDir, treebank_dir_of
from gpt_model.schedule import lr_at
from gpt_model.signals import GracefulStop, StoppedBySignal, exit_status

__all__ = ["Trainer", "TrainResult", "TrainingDiverged", "train", "LossSum", "RunConfig", "TrainConfig",
           "CheckpointError", "build_optimizer", "param_groups", "flops_per_token", "peak_bf16_flops"]


class TrainingDiverged(RuntimeError):
    """Too many consecutive steps with a non-finite loss or gradient."""


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
    stop_signal: str | None = None  # "SIGINT" / "SIGTERM" when a signal stopped the run

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def exit_status(self) -> int:
        """The CLI's exit status: 0, or 128 + the signal's number when one stopped the run."""
        return exit_status(signal.Signals[self.stop_signal]) if self.stop_signal else 0


class Trainer:
    """Trains a GPT on packed rows into a run directory (its layout: ``gpt_model.rundir``).

    Global torch state — the one place it is written down. Constructing a Trainer seeds torch's
    global RNG (``cfg.seed`` for the initial weights, then ``cfg.seed + 1 + rank``: dropout in
    ``fit`` draws from that global stream, and a resumed run restores it, so it is left in
    place), calls ``torch.set_num_threads(cfg.num_threads)`` when that is non-zero, and on CUDA
    ``torch.set_float32_matmul_precision("high")``. These stay in effect afterwards (the final
    evaluation in ``train`` runs under them, which keeps its numbers reproducible). ``fit``
    installs SIGINT/SIGTERM handlers (main thread only) and restores the previous ones: until
    its first step finished a signal stops it at once (StoppedBySignal), afterwards the step in
    progress finishes and is checkpointed first.

    `lock_held`: the caller already holds the run directory's write lock (``train`` does);
    otherwise ``fit`` takes it on the main rank for its duration.
    """

    def __init__(self, model_cfg: GPTConfig, cfg: TrainConfig, train_data: PackedDataset,
                 val_data: PackedDataset | None, out_dir: str | Path, *, extra_config: dict[str, Any] | None = None,
                 dist_info: DistInfo | None = None, lock_held: bool = False):
        if train_data.seq_len > model_cfg.context_len:
            raise ValueError(f"training rows of {train_data.seq_len} tokens exceed GPTConfig.context_len "
                             f"({model_cfg.context_len})")
        self.model_cfg, self.cfg = model_cfg, cfg
        self.train_data, self.val_data = train_data, val_data
        self.out_dir = Path(out_dir)
        self.run = RunDir(self.out_dir)
        self.extra_config = dict(extra_config or {})
        self.device = resolve_device(cfg.device)
        self.dist = dist_info or init_distributed(self.device.type)
        if self.device.type == "cuda":
            self.device = device_for("cuda", self.dist)
            torch.set_float32_matmul_precision("high")
        self.amp_dtype = resolve_amp_dtype(cfg.dtype, self.device)
        if cfg.num_threads:
            check_threads(cfg.num_threads)
            torch.set_num_threads(cfg.num_threads)
        self.sampler = BatchSampler(len(train_data), cfg.batch_size, seed=cfg.seed,
                                    world_size=self.dist.world_size, rank=self.dist.rank,
                                    grad_accum_steps=cfg.grad_accum_steps)
        torch.manual_seed(cfg.seed)  # same initial weights on every rank
        self.model = GPT(model_cfg).to(self.device)
        self.model.activation_checkpointing = cfg.activation_checkpointing
        self.optimizer = build_optimizer(self.model, cfg, self.device)
        torch.manual_seed(cfg.seed + 1 + self.dist.rank)  # dropout etc.: its own stream per rank
        self.step = self.n_skipped = self.consecutive_bad = self.tokens_seen = 0
        self.elapsed_s = 0.0
        self.last_val_loss: float | None = None
        self.data_fingerprint = train_data.fingerprint()
        self._stop = GracefulStop()
        self._stop_requested = False
        self._lock_held = lock_held
        self._train_model: nn.Module = LossSum(self.model, self.amp_dtype)
        self.peak_flops = peak_bf16_flops(self.device)
        self.flops_per_token = flops_per_token(model_cfg, train_data.seq_len)

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
        check_out_dir(self.run, resume)
        lock = None if self._lock_held else lock_run_dir(self.run, self.dist, self.device)
        try:
            self._prepare_run_dir(resume)
            if self.cfg.compile:
                self._train_model = torch.compile(self._train_model)
            self._train_model = wrap_model(self._train_model, self.dist, self.device)
            with self._stop:
                start = self.step
                try:
                    return self._loop(on_step)
                except StoppedBySignal as stop:
                    self._stopped_at_once(stop, start)
                    raise
        finally:
            if lock is not None:
                lock.release()

    def _loop(self, on_step: Callable | None) -> TrainResult:
        cfg = self.cfg
        bar = ProgressBar(self.dist.is_main and cfg.progress, cfg.max_steps, self.step)
        meter = IntervalMeter(self.tokens_seen, self.elapsed_s)
        status, saved = "finished", None
        try:
            while self.step < cfg.max_steps:
                rec = self._train_step()
                stop = rec.pop("stop")
                self._count(rec, meter)
                self._stop.deferring = True  # from now on a signal waits for the step and its checkpoint
                log_now = self.step % cfg.log_interval == 0 or self.step == cfg.max_steps or rec["skipped"]
                if log_now:
                    self._add_throughput(rec, meter, bar)
                if self._evaluation_due():
                    meter.pause(self._evaluate, rec, bar)
                if self.dist.is_main and (log_now or "val_loss" in rec):
                    self._log(rec)
                bar.update()
                if on_step is not None:
                    on_step(self, rec)
                if self.consecutive_bad >= cfg.max_bad_steps:
                    self._diverged()
                stop = stop or self._stop_requested
                if stop or self._checkpoint_due():
                    saved = meter.pause(self.save_checkpoint)
                if stop:
                    status = "interrupted"
                    break
        finally:
            bar.close()
        self._stop.deferring = False  # nothing left to wait for: a signal now stops at once
        return self._finish(status, saved)

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
        stop_flag = 1.0 if (self._stop.signum is not None or self._stop_requested) else 0.0
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

    # ------------------------------------------------------------------ the loop's call-outs
    def _count(self, rec: dict[str, Any], meter: IntervalMeter) -> None:
        """Advance the counters past the step just taken."""
        self.step += 1
        self.tokens_seen += self.tokens_per_step
        self.elapsed_s = meter.elapsed()
        if rec["skipped"]:
            self.n_skipped += 1
            self.consecutive_bad += 1
        else:
            self.consecutive_bad = 0
            meter.add_loss(rec["train_loss"])

    def _add_throughput(self, rec: dict[str, Any], meter: IntervalMeter, bar: ProgressBar) -> None:
        mean_loss, tps = meter.interval(self.tokens_seen)
        rec.update(train_loss_avg=mean_loss, tokens_per_s=tps, tokens=self.tokens_seen, elapsed_s=self.elapsed_s,
                   n_skipped=self.n_skipped)
        if self.peak_flops:
            rec["mfu"] = mfu(tps, self.flops_per_token, self.peak_flops, self.dist.world_size)
        bar.show(loss=f"{rec['train_loss']:.4f}", tok_s=f"{tps:,.0f}")

    def _evaluation_due(self) -> bool:
        every = self.cfg.eval_interval and self.step % self.cfg.eval_interval == 0
        return self.val_data is not None and (every or self.step == self.cfg.max_steps)

    def _evaluate(self, rec: dict[str, Any], bar: ProgressBar) -> None:
        rec["val_loss"] = self.last_val_loss = self.validation_loss()
        bar.write(f"step {self.step}: val loss {rec['val_loss']:.4f}")

    def _checkpoint_due(self) -> bool:
        every = self.cfg.checkpoint_interval and self.step % self.cfg.checkpoint_interval == 0
        return bool(every) or self.step == self.cfg.max_steps

    def _finish(self, status: str, saved: Path | None) -> TrainResult:
        if status == "finished" and self.dist.is_main:
            save_model(self.model, self.out_dir, self.run_config())
        if status == "interrupted" and self.dist.is_main:
            why = self._stop.name or "request"
            self._log({"event": "interrupted", "signal": why, "step": self.step})
            print(f"stopped by {why} at step {self.step}; checkpoint {saved}; continue with --resume",
                  file=sys.stderr)
        barrier(self.dist)
        tps = self.tokens_seen / self.elapsed_s if self.elapsed_s > 0 else math.nan
        latest = self.run.latest_checkpoint()
        return TrainResult(status=status, step=self.step, checkpoint=str(latest) if latest else None,
                           n_skipped=self.n_skipped, elapsed_s=self.elapsed_s, tokens_per_s=tps,
                           last_val_loss=self.last_val_loss,
                           stop_signal=self._stop.name if status == "interrupted" else None)

    def _stopped_at_once(self, stop: StoppedBySignal, start: int) -> None:
        """Say what a signal that did not wait for a checkpoint left behind."""
        latest = self.run.latest_checkpoint()
        if self.step == start:
            msg = f"stopped by {stop.name} before the first step finished: nothing new to save"
        else:
            msg = f"stopped by {stop.name} at step {self.step}"
        msg += f"; the latest checkpoint is {latest}" if latest else "; no checkpoint was written"
        if self.dist.is_main:
            self._log({"event": "interrupted", "signal": stop.name, "step": self.step})
            print(msg, file=sys.stderr, flush=True)

    def _diverged(self, why: str | None = None) -> NoReturn:
        good = last_finite_checkpoint(self.run)
        where = (f"the last good checkpoint is {good} (resume from it with a lower lr, e.g. "
                 f"--set train.lr=...)" if good else "no checkpoint with finite weights was written yet")
        why = why or (f"{self.consecutive_bad} consecutive steps (up to step {self.step}) had a non-finite loss "
                      f"or gradient and were skipped")
        msg = f"training diverged: {why} ({self.n_skipped} skipped in all); {where}"
        if self.dist.is_main:
            self._log({"event": "diverged", "step": self.step, "n_skipped": self.n_skipped, "message": msg})
        raise TrainingDiverged(msg)

    def _log(self, record: dict[str, Any]) -> None:
        append_record(self.run.metrics_path, record)

    # ------------------------------------------------------------------ run directory, checkpoints
    def _prepare_run_dir(self, resume: bool) -> None:
        run, main = self.run, self.dist.is_main
        if main:
            run.path.mkdir(parents=True, exist_ok=True)
            for tmp in run.stale_tmp_dirs():  # left by a crash mid-write
                shutil.rmtree(tmp, ignore_errors=True)
        barrier(self.dist)
        latest = resume_point(run, resume)
        if latest is not None:
            self.load_checkpoint(latest)
            if main:
                truncate_after(run.metrics_path, self.step)
                self._log({"event": "resumed", "step": self.step, "checkpoint": latest.name})
        elif main:
            run.metrics_path.unlink(missing_ok=True)
        if main:
            atomic_write_json(run.config_path, self.run_config())
        barrier(self.dist)

    def trainer_state(self) -> dict[str, Any]:
        return {"format": CHECKPOINT_FORMAT, "step": self.step, "tokens_seen": self.tokens_seen,
                "n_skipped": self.n_skipped, "consecutive_bad": self.consecutive_bad, "elapsed_s": self.elapsed_s,
                "last_val_loss": self.last_val_loss, "world_size": self.dist.world_size,
                "data_fingerprint": self.data_fingerprint, "train_rows": len(self.train_data)}

    def save_checkpoint(self) -> Path:
        """Write checkpoints/step_N (every rank calls it; gpt_model.checkpoint has the format).
        Weights holding NaN/inf are not saved: the run stops as diverged (TrainingDiverged)."""
        try:
            return save_trainer_checkpoint(self.run, self.step, model=self.model, optimizer=self.optimizer,
                                           config=self.run_config(), state=self.trainer_state(),
                                           keep=self.cfg.keep_checkpoints, dist=self.dist, device=self.device)
        except NonFiniteWeightsError as err:
            self._diverged(str(err))

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore weights, optimizer, RNG and counters; CheckpointError on anything amiss."""
        counters = load_trainer_checkpoint(Path(path), model=self.model, optimizer=self.optimizer,
                                           model_config=self.model_cfg.to_dict(), train_config=self.cfg.to_dict(),
                                           data_fingerprint=self.data_fingerprint, dist=self.dist,
                                           device=self.device)
        for name, value in counters.items():
            setattr(self, name, value)


# =========================================================================== the whole job
def train(config: RunConfig, out_dir: str | Path, *, resume: bool = False,
          on_step: Callable[[Trainer, dict[str, Any]], None] | None = None,
          evaluate_at_end: bool = True) -> TrainResult:
    """Prepare the data (generating the treebank if needed), train, evaluate, write results.json,
    holding the run directory's write lock throughout (rank 0). Paths, thread count and batch
    size are checked before anything is written; a start that fails before training leaves no
    run directory behind."""
    run = RunDir(out_dir)
    check_out_dir(run, resume)
    device = resolve_device(config.train.device)
    check_run_config(config, run.path, device)
    info = init_distributed(device.type) if env_dist_info().enabled else DistInfo()
    created = first_missing_dir(run.path)
    lock = lock_run_dir(run, info, device)
    try:
        return _train_locked(config, run, info, resume=resume, on_step=on_step, evaluate_at_end=evaluate_at_end)
    except Exception:
        if info.is_main:
            discard_failed_start(run, created)
        raise
    finally:
        if lock is not None:
            lock.release()


def _check_resume_before_data(config: RunConfig, run: RunDir, checkpoint: Path, world_size: int) -> None:
    """CheckpointError when resuming from `checkpoint` cannot work, found before the data are
    prepared: another model shape, data order, data source or tokenizer, or a treebank that
    would have to be generated somewhere else than where the run's own is."""
    check_resume_config(checkpoint, model_config=config.model.to_dict(), train_config=config.train.to_dict(),
                        data_config=config.data.to_dict(), world_size=world_size)
    if config.data.source != "treebank":
        return
    from corpus.treebank import is_complete_treebank

    ours = treebank_dir_of(RunDir(checkpoint).read_config().get("data"), run.path)
    wanted = treebank_dir_of(config.data.to_dict(), run.path)
    if ours is not None and wanted.absolute() != ours.absolute() and not is_complete_treebank(wanted):
        raise CheckpointError(f"{checkpoint}: the run trained on the treebank at {ours}; resuming would "
                              f"generate a new one at {wanted} (pass --corpus {ours})")


def _train_locked(config: RunConfig, run: RunDir, info: DistInfo, *, resume: bool, on_step: Callable | None,
                  evaluate_at_end: bool) -> TrainResult:
    from gpt_model.data import prepare_data
    from gpt_model.evaluate import final_results

    latest = resume_point(run, resume)  # before generating data: a new run must not overwrite an old one
    if latest is not None:  # and a resume must fit its checkpoint before any data work
        _check_resume_before_data(config, run, latest, info.world_size)
    bundle = prepare_data(config.data, run.path, config.model.context_len, seed=config.train.seed,
                          reuse_tokenizer=resume, is_main=info.is_main, wait=lambda: barrier(info))
    model_cfg = replace(config.model, vocab_size=len(bundle.tokenizer))
    data_section = config.data.to_dict()
    if config.data.source == "treebank":
        data_section["path"] = bundle.data_info["corpus_dir"]
    extra = {"data": data_section, "tokenizer": bundle.tokenizer_info,
             "data_info": {k: v for k, v in bundle.data_info.items() if k != "treebank_stats"}}
    trainer = Trainer(model_cfg, config.train, bundle.train, bundle.val, run.path, extra_config=extra,
                      dist_info=info, lock_held=True)
    result = trainer.fit(resume=resume, on_step=on_step)
    if result.status == "finished" and evaluate_at_end and info.is_main:
        final = final_results(trainer.model, bundle, result, device=trainer.device,
                              batch_size=config.train.batch_size, amp_dtype=trainer.amp_dtype)
        atomic_write_json(run.results_path, final)
        trainer._log(final_event(final))
        result.final = final
    barrier(info)
    return result
