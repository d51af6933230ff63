"""Durable writes: a file (or a directory) is either the old version or the whole new one.

The one owner of "write whole or not at all" for every file stratascope promises is complete:
checkpoints, model weights, config.json, the treebank's files (``stats.json`` is its
completeness marker), probe results and rewritten metrics. Everything else imports it.

The recipe: write to a temporary name in the same directory, flush and ``fsync`` the data,
``os.replace`` it over the target (atomic on POSIX), then ``fsync`` the directory so the rename
itself survives a power cut. It lives in ``corpus`` because that is the bottom package: every
other package may import it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_write_json", "atomic_write_with",
           "commit_dir", "fsync_dir", "fsync_file"]


def fsync_file(path: str | Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_dir(path: str | Path) -> None:
    """Make a directory's entries (a rename, a new file) durable. A no-op where the platform
    cannot open directories."""
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on a directory
        pass
    finally:
        os.close(fd)


def atomic_write_with(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` to produce the file under a temporary name in the same directory,
    then fsync it and rename it over ``path``. For writers that want a path (``safetensors``,
    ``torch.save``). On any error the temporary file is removed and ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write_with(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    """UTF-8, ``\\n`` line endings on every platform."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, data: Any, *, indent: int | None = 2, allow_nan: bool = True) -> Path:
    """JSON with a trailing newline. ``allow_nan=False`` refuses NaN/inf (strict JSON)."""
    return atomic_write_text(path, json.dumps(data, indent=indent, allow_nan=allow_nan) + "\n")


def commit_dir(tmp: str | Path, final: str | Path) -> Path:
    """Publish a fully written directory ``tmp`` as ``final``: fsync its files, rename it into
    place (replacing an existing ``final`` through a hidden ``.NAME.old``), fsync the parent.

    ``tmp`` must be in the same parent directory as ``final`` (a hidden name, e.g.
    ``.step_0000100.tmp``, so that listings never mistake it for a complete one)."""
    tmp, final = Path(tmp), Path(final)
    for p in tmp.iterdir():
        if p.is_file():
            fsync_file(p)
    fsync_dir(tmp)
    if final.exists():
        trash = final.with_name(f".{final.name}.old")
        shutil.rmtree(trash, ignore_errors=True)
        os.rename(final, trash)
        os.rename(tmp, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.rename(tmp, final)
    fsync_dir(final.parent)
    return final
