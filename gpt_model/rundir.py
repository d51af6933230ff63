"""The layout of a run directory: the one module that knows where a run keeps what.

::

    runs/<name>/
        config.json            {"model": GPTConfig, "train": …, "data": …, "tokenizer": {…}, …}
        model.safetensors      final weights (written when the run finishes)
        metrics.jsonl          one JSON record per log step / evaluation / event
        results.json           final validation loss, entropy floor, agreement accuracy
        tokenizer/             vocab.json (word) or the BPE files (config["tokenizer"]["path"])
        data/                  the treebank it trained on, unless config["data"]["path"] says otherwise
        checkpoints/step_0000200/   model.safetensors, config.json, optimizer.pt, rng_rank*.pt, trainer_state.json
        checkpoints/.step_0000300.tmp/   a checkpoint being written (never listed)
        probes/<model-tag>/    results.json, report.md, results.csv, figures.html
        .lock                  while a process writes the run (flock on the directory itself): its PID

Everything else (trainer, hooks, probes, dashboard, CLI) asks a ``RunDir`` instead of joining
paths itself. Readers never take the lock; a writer takes it with ``RunDir.lock()``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
METRICS_FILE = "metrics.jsonl"
RESULTS_FILE = "results.json"
CHECKPOINT_DIR = "checkpoints"
PROBES_DIR = "probes"
DEFAULT_TREEBANK_DIR = "data"
LOCK_FILE = ".lock"
TOKENIZER_DIR = "tokenizer"  # where a run keeps the tokenizer it trained with
RUNS_ROOT = Path("runs")  # where a bare run name is looked up

_STEP_RE = re.compile(r"^step_(\d+)$")


def checkpoint_name(step: int) -> str:
    """``step_0000200``: seven digits so that names sort by step."""
    if step < 0:
        raise ValueError(f"checkpoint step must be ≥ 0, got {step}")
    return f"step_{step:07d}"


def parse_checkpoint_name(name: str) -> int | None:
    """The step of a complete checkpoint's directory name, or None (temporary or foreign names)."""
    m = _STEP_RE.match(name)
    return int(m.group(1)) if m else None


def is_checkpoint_dir(path: str | Path) -> bool:
    path = Path(path)
    return path.parent.name == CHECKPOINT_DIR and parse_checkpoint_name(path.name) is not None


def treebank_dir_of(data_section: dict[str, Any] | None, run_dir: str | Path) -> Path | None:
    """The treebank directory named by a run config's "data" section: ``path`` (absolute, or
    relative to the run directory), ``RUN/data`` when it has none; None when the run trained on
    text rather than a treebank."""
    data = data_section or {}
    if data.get("source", "treebank") != "treebank":
        return None
    p = Path(data.get("path") or DEFAULT_TREEBANK_DIR)
    return p if p.is_absolute() else Path(run_dir) / p


class RunLockedError(RuntimeError):
    """Another process holds the run directory's write lock."""


class RunLock:
    """An exclusive ``flock`` on the run directory itself, so that deleting ``RUN/.lock`` (a
    user tidying up) cannot let a second writer in; ``RUN/.lock`` only holds the owner's PID,
    while the lock is held, for the message a refused writer gets. Released by ``release()``
    (which deletes ``RUN/.lock``), on leaving a ``with`` block, or by the kernel when the process
    exits (even on SIGKILL, which leaves a stale ``.lock`` that nothing reads)."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir)
        self.pid_path = self.path / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        """Create the run directory if needed and lock it; RunLockedError naming the holder's
        PID when another process holds it, ValueError when the directory cannot be written."""
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = self.holder()
            who = f"process {holder}" if holder else "another process"
            raise RunLockedError(f"{self.path} is being written by {who}: wait for it to finish, "
                                 f"stop it, or choose another --out") from None
        self._fd = fd
        try:
            self._write_pid()
        except OSError as err:
            self.release()
            raise ValueError(f"{self.path} is not writable ({err.strerror}): choose another --out") from None
        return self

    def _write_pid(self) -> None:
        fd = os.open(self.pid_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, f"{os.getpid()}\n".encode())
        finally:
            os.close(fd)

    def holder(self) -> int | None:
        """The PID written by the process holding the lock (None if unreadable or deleted)."""
        try:
            text = self.pid_path.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def release(self) -> None:
        if self._fd is not None:
            # the PID file goes first, while no other writer can be writing its own
            with contextlib.suppress(OSError):
                self.pid_path.unlink(missing_ok=True)
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "RunLock":
        return self if self.held else self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


@dataclass(frozen=True)
class RunDir:
    """A run directory. ``RunDir(path)`` takes the path as given; ``RunDir.find(spec)`` resolves
    a user's spelling (a bare name under ``runs/``, a checkpoint directory → its run)."""

    path: Path

    def __init__(self, path: str | Path):
        object.__setattr__(self, "path", Path(path))

    # ------------------------------------------------------------------ lookup
    @classmethod
    def find(cls, spec: str | Path) -> "RunDir | None":
        """The run behind ``spec`` (``runs/NAME``, ``NAME`` under ``runs/``, a run directory or
        one of its checkpoint directories), or None when no ``config.json`` is there."""
        path = resolve_model_dir(spec)
        if path is None or not (path / CONFIG_FILE).is_file():
            return None
        return cls(path.parent.parent) if is_checkpoint_dir(path) else cls(path)

    def __str__(self) -> str:
        return str(self.path)

    @property
    def name(self) -> str:
        return self.path.resolve().name

    # ------------------------------------------------------------------ files
    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def weights_path(self) -> Path:
        return self.path / WEIGHTS_FILE

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def results_path(self) -> Path:
        return self.path / RESULTS_FILE

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK_FILE

    @property
    def probes_dir(self) -> Path:
        return self.path / PROBES_DIR

    def probe_dir(self, tag: str) -> Path:
        return self.probes_dir / tag

    def is_run(self) -> bool:
        return self.config_path.is_file()

    def has_final_weights(self) -> bool:
        return self.weights_path.is_file()

    def read_config(self) -> dict[str, Any]:
        """config.json as a dict; FileNotFoundError / ValueError naming the file."""
        if not self.config_path.is_file():
            raise FileNotFoundError(f"{self.path} is not a run directory: no {CONFIG_FILE}")
        from corpus.textio import read_json

        return read_json(self.config_path, f"a JSON object (the run's {CONFIG_FILE})")

    # ------------------------------------------------------------------ checkpoints
    @property
    def checkpoints_dir(self) -> Path:
        return self.path / CHECKPOINT_DIR

    def checkpoint_dir(self, step: int) -> Path:
        return self.checkpoints_dir / checkpoint_name(step)

    def checkpoint_tmp_dir(self, step: int) -> Path:
        """Where checkpoint ``step`` is written before it is renamed into place."""
        return self.checkpoints_dir / f".{checkpoint_name(step)}.tmp"

    def stale_tmp_dirs(self) -> list[Path]:
        """Temporary checkpoint directories left by a crash mid-write."""
        root = self.checkpoints_dir
        return sorted(root.glob(".step_*.tmp")) if root.is_dir() else []

    def checkpoints(self) -> list[tuple[int, Path]]:
        """Complete checkpoints, oldest first (temporary directories are never listed)."""
        root = self.checkpoints_dir
        out = []
        if root.is_dir():
            for p in root.iterdir():
                step = parse_checkpoint_name(p.name)
                if step is not None and p.is_dir():
                    out.append((step, p))
        return sorted(out)

    def latest_checkpoint(self) -> Path | None:
        ckpts = self.checkpoints()
        return ckpts[-1][1] if ckpts else None

    # ------------------------------------------------------------------ data, tokenizer
    def treebank_dir(self, config: dict[str, Any] | None = None) -> Path | None:
        """The treebank the run trained on (None for a text run). ``config``: an already-read
        config.json, to save reading it again."""
        config = self.read_config() if config is None else config
        return treebank_dir_of(config.get("data"), self.path)

    def tokenizer_path(self, config: dict[str, Any] | None = None) -> Path | None:
        """The tokenizer file or directory named by config["tokenizer"]["path"] (relative to the
        run directory), or None when the config names none."""
        config = self.read_config() if config is None else config
        rel = (config.get("tokenizer") or {}).get("path")
        return None if not rel else self.path / rel

    # ------------------------------------------------------------------ writing
    def lock(self) -> RunLock:
        """The run's write lock (not yet taken): ``with run.lock(): …`` or ``.acquire()``."""
        return RunLock(self.path)


def resolve_model_dir(spec: str | Path) -> Path | None:
    """A run or checkpoint directory as the user spelled it: the path itself when it is a
    directory, else ``runs/SPEC`` when that is; None when neither exists."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    if not path.is_absolute() and (RUNS_ROOT / path).is_dir():
        return RUNS_ROOT / path
    return None


def locate(path: str | Path) -> tuple[RunDir, Path | None]:
    """(the run, the checkpoint directory or None) for a run or checkpoint directory."""
    path = Path(path)
    if is_checkpoint_dir(path):
        return RunDir(path.parent.parent), path
    return RunDir(path), None
