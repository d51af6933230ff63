"""Checks ``train`` makes before it writes anything or prepares any data: values that cannot
work on this machine (``--threads``, ``--batch-size``) and data paths that cannot be read or
written (``--corpus``, ``--data``). Each failure is one ValueError / FileNotFoundError naming
the flag, the value or path, and the remedy. (The run directory itself: ``run_writer``.)
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from gpt_model.config import GPTConfig
from gpt_model.data import DataConfig
from gpt_model.run_config import RunConfig, TrainConfig
from gpt_model.rundir import treebank_dir_of

GIB = 1024**3


def check_run_config(config: RunConfig, run_dir: Path, device: torch.device) -> None:
    """Every up-front check of a run's config (see the module doc)."""
    check_threads(config.train.num_threads)
    check_batch_fits(config.model, config.train, device)
    check_data_paths(config.data, run_dir)


def check_threads(num_threads: int) -> None:
    """More intra-op threads than CPUs only slows a run down, and a huge count fails deep inside
    torch (a thread pool that cannot map its stacks): refuse more than the machine has."""
    cpus = os.cpu_count()
    if cpus and num_threads > cpus:
        raise ValueError(f"--threads (train.num_threads) is {num_threads}, but this machine has {cpus} CPUs: "
                         f"pass a number from 1 to {cpus}, or 0 for torch's default")


def min_batch_bytes(model: GPTConfig, train: TrainConfig) -> int:
    """A floor on the memory one micro-batch needs: its input and target ids (int64) and the
    residual stream every block keeps for the backward pass, at 2 bytes a value (the real
    need, with attention and MLP activations and the logits, is many times this)."""
    tokens = train.batch_size * model.context_len
    return tokens * (2 * 8 + 2 * model.d_model * model.n_layer)


def device_memory_bytes(device: torch.device) -> int | None:
    """The memory of `device` (a GPU's, or the machine's RAM for the CPU); None if unknown."""
    try:
        if device.type == "cuda":
            return int(torch.cuda.get_device_properties(device.index or 0).total_memory)
        if device.type == "cpu":
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, RuntimeError, AttributeError):
        pass
    return None


def check_batch_fits(model: GPTConfig, train: TrainConfig, device: torch.device) -> None:
    """Refuse a micro-batch that cannot fit in the device's memory, before hours of data work
    and a first step that would never end."""
    need, have = min_batch_bytes(model, train), device_memory_bytes(device)
    if have and need > have:
        where = "GPU" if device.type == "cuda" else "RAM"
        raise ValueError(f"--batch-size (train.batch_size) {train.batch_size}: one micro-batch of "
                         f"{train.batch_size} rows × {model.context_len} tokens needs more than {need / GIB:,.0f} "
                         f"GiB for its activations alone, and this machine has {have / GIB:,.1f} GiB of {where}; "
                         f"pass a smaller --batch-size (with --grad-accum N for a larger effective batch)")


def check_data_paths(data: DataConfig, run_dir: Path) -> None:
    """The treebank directory must be a directory (writable when it must be generated); a text
    file must be a readable file."""
    if data.source == "text":
        path = Path(data.path)
        if not path.is_file():
            raise FileNotFoundError(f"--data: no text file at {path}")
        if not os.access(path, os.R_OK):
            raise ValueError(f"--data: {path} is not readable")
        return
    from corpus.treebank import is_complete_treebank

    corpus_dir = treebank_dir_of(data.to_dict(), run_dir)
    flag = "--corpus" if data.path else "treebank directory"
    if corpus_dir.exists() and not corpus_dir.is_dir():
        raise ValueError(f"{flag} {corpus_dir} is a file, not a directory: name a treebank directory "
                         f"(it is generated there when missing)")
    if corpus_dir.is_dir() and is_complete_treebank(corpus_dir):
        return
    check_writable_dir(corpus_dir, flag, "the treebank is generated there")


def nearest_existing(path: Path) -> Path:
    """`path` itself when it exists, else its closest existing ancestor."""
    path = path.absolute()
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(path.anchor)


def check_writable_dir(path: Path, flag: str, why: str = "") -> None:
    """`path` (made later, with its parents) can be a writable directory: its closest existing
    ancestor is a directory this process may write."""
    base = nearest_existing(path)
    because = f" ({why})" if why else ""
    if not base.is_dir():
        raise ValueError(f"{flag} {path}: {base} is a file, not a directory{because}")
    if not os.access(base, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {path}: {base} is not writable{because}; choose another place")
