"""Who may write a run directory, and when: one writer at a time (the directory's lock, taken
by rank 0), no new run over a previous one, and ``--resume`` only where a checkpoint is.

Readers (dashboard, probes, ``load_model``) never take the lock and never block.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from gpt_model.distributed import DistInfo, all_reduce_sum
from gpt_model.preflight import check_writable_dir
from gpt_model.rundir import RunDir, RunLock, RunLockedError


def check_out_dir(run: RunDir, resume: bool) -> None:
    """Before any work: the run directory must be (or can be made) a writable directory, and
    `resume` needs a checkpoint."""
    if run.path.exists() and not run.path.is_dir():
        raise ValueError(f"--out {run.path} is an existing file, not a run directory")
    check_writable_dir(run.path, "--out")
    if resume and run.latest_checkpoint() is None:
        raise ValueError(f"--resume: {run.path} holds no checkpoint to continue from "
                         f"(drop --resume to start a new run there)")
    if run.checkpoints_dir.is_dir():
        check_writable_dir(run.checkpoints_dir, "--out", "checkpoints are written there")


def first_missing_dir(path: Path) -> Path | None:
    """The outermost directory that making `path` (with its parents) would create; None when
    `path` exists."""
    path = path.absolute()
    missing = None
    for candidate in (path, *path.parents):
        if candidate.exists():
            break
        missing = candidate
    return missing


def discard_failed_start(run: RunDir, created: Path | None) -> None:
    """After a start that failed before anything was trained (no checkpoint, no metrics, no
    weights), remove what this start created: the run directory, and its parents up to
    `created` when they are empty. Nothing is removed from a directory that already existed."""
    if created is None or not run.path.is_dir():
        return
    if run.checkpoints() or run.metrics_path.exists() or run.has_final_weights():
        return
    shutil.rmtree(run.path, ignore_errors=True)
    path = run.path.absolute().parent
    while created in (path, *path.parents):
        try:
            path.rmdir()
        except OSError:
            break
        if path == created:
            break
        path = path.parent


def resume_point(run: RunDir, resume: bool) -> Path | None:
    """The checkpoint to resume from (None: a new run); ValueError when a new run would
    overwrite a previous one."""
    latest = run.latest_checkpoint()
    if resume:
        check_out_dir(run, resume)
        return latest
    if latest is not None:
        raise ValueError(f"{run.path} already holds checkpoints (latest {latest.name}): pass "
                         f"--resume to continue that run, or choose another --out")
    if run.has_final_weights():
        raise ValueError(f"{run.path} already holds a trained model: choose another --out")
    return None


def lock_run_dir(run: RunDir, dist: DistInfo, device: torch.device) -> RunLock | None:
    """Rank 0 takes the run directory's write lock; when another process holds it, every rank
    fails at once with RunLockedError (rank 0's names the holder's PID)."""
    lock, refused = None, None
    if dist.is_main:
        try:
            lock = run.lock().acquire()
        except RunLockedError as err:
            refused = err
    if dist.enabled:
        flag = all_reduce_sum(torch.tensor([0.0 if refused is None else 1.0], device=device), dist)
        if refused is None and float(flag[0]) > 0:
            refused = RunLockedError(f"{run.path} is being written by another process (rank 0 could not lock it)")
    if refused is not None:
        raise refused
    return lock
