"""Reading the text files users hand us (configs, vocabularies, corpora, indexes) with errors
that say where: ``PATH:LINE[:COLUMN]: what is wrong: expected WHAT``.

The one owner of "decode a user's file and say where it broke"; every package imports it
(``corpus`` depends on nothing of ours, so ``gpt_model``, ``hooks`` and ``probes`` can).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

JSON_TYPES = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
              float: "a number", type(None): "null"}


def _read_bytes(path: Path, expected: str | None) -> bytes:
    wanted = f": expected {expected}" if expected else ""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"no file at {path}{wanted}") from None
    except OSError as err:
        raise ValueError(f"{path}: cannot read it ({err.strerror or err}){wanted}") from None


def decode_utf8(path: str | os.PathLike[str], data: bytes, expected: str | None = None) -> str:
    """``data`` (read from ``path``) as text; ValueError ``PATH:LINE: not UTF-8 …`` naming the
    line of the first byte that does not decode (Python's own error gives only a byte offset)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line, line_start = data.count(b"\n", 0, err.start) + 1, data.rfind(b"\n", 0, err.start) + 1
        wanted = f": expected {expected}" if expected else "; save the file as UTF-8"
        raise ValueError(f"{path}:{line}: not UTF-8 (byte 0x{data[err.start]:02x} at byte "
                         f"{err.start - line_start + 1} of the line){wanted}") from None


def read_text_utf8(path: str | os.PathLike[str], expected: str | None = None) -> str:
    """The text of a UTF-8 file; FileNotFoundError, or ValueError naming the file (and line)."""
    path = Path(path)
    return decode_utf8(path, _read_bytes(path, expected), expected)


def read_json(path: str | os.PathLike[str], expected: str = "a JSON object", kind: type | tuple[type, ...] = dict
              ) -> Any:
    """The JSON value of ``path``, which must be a ``kind`` (``expected`` says what the file should
    hold, for the message). A missing file raises FileNotFoundError; an unreadable one, one that is
    not UTF-8 or not JSON a one-line ValueError ``PATH:LINE[:COLUMN]: …``; a value of another
    type ``PATH: expected …, got a list``."""
    path = Path(path)
    text = decode_utf8(path, _read_bytes(path, expected), expected)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}:{err.colno}: not valid JSON ({err.msg}): expected {expected}") from None
    if not isinstance(value, kind):
        raise ValueError(f"{path}: expected {expected}, got {JSON_TYPES.get(type(value), type(value).__name__)}")
    return value
