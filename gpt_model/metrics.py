"""metrics.jsonl: one JSON object per line, appended by the run's one writer.

Records are log steps (``step``, ``train_loss``, ``val_loss``, ``lr``, ``grad_norm``, …) and
events (``{"event": "resumed" | "interrupted" | "diverged" | "final", …}``). The file stays strict
JSON: non-finite numbers are written as null. A line cut by a crash is skipped when reading,
and a resumed run first truncates the file to its checkpoint's step.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Callable

from corpus.durable import atomic_write_text


def append_record(path: str | Path, record: dict[str, Any]) -> None:
    """Append one record; NaN/inf values become null."""
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
    with open(path, "a") as f:
        f.write(json.dumps(clean) + "\n")


def read_lines(path: str | Path) -> list[tuple[str, dict[str, Any]]]:
    """(line, record) for every complete record of the file ([] when it does not exist)."""
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a crash
        if isinstance(record, dict):
            out.append((line, record))
    return out


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The file's records, in order (cut or malformed lines skipped)."""
    return [record for _, record in read_lines(path)]


def final_event(final: dict[str, Any]) -> dict[str, Any]:
    """The ``final`` event for a finished run's results.json contents (agreement as one number)."""
    record = {"event": "final", **{k: v for k, v in final.items() if k != "agreement"}}
    if "agreement" in final:
        record["agreement_accuracy"] = final["agreement"]["accuracy"]
    return record


def truncate_after(path: str | Path, step: int) -> None:
    """Drop the records of steps after `step`, and the ``final`` event (a resumed run recomputes
    them identically). The rewrite is atomic."""
    path = Path(path)
    if not path.is_file():
        return
    kept = [line for line, rec in read_lines(path) if rec.get("step", 0) <= step and rec.get("event") != "final"]
    atomic_write_text(path, "".join(line + "\n" for line in kept))


class IntervalMeter:
    """The clock and running numbers between two log records; tokens/s counts training time
    only (evaluation and checkpoint time is excluded through ``pause``)."""

    def __init__(self, tokens_seen: int, elapsed_s: float):
        self.t_start = self.t_last = time.perf_counter()
        self.elapsed_at_start, self.tokens_last = elapsed_s, tokens_seen
        self.loss, self.n = 0.0, 0

    def elapsed(self) -> float:
        return self.elapsed_at_start + (time.perf_counter() - self.t_start)

    def add_loss(self, loss: float) -> None:
        self.loss += loss
        self.n += 1

    def interval(self, tokens_seen: int) -> tuple[float | None, float]:
        """(mean train loss, tokens/s) since the last call."""
        now = time.perf_counter()
        tps = (tokens_seen - self.tokens_last) / max(now - self.t_last, 1e-9)
        mean = self.loss / self.n if self.n else None
        self.t_last, self.tokens_last, self.loss, self.n = now, tokens_seen, 0.0, 0
        return mean, tps

    def pause(self, work: Callable[..., Any], *args: Any) -> Any:
        t0 = time.perf_counter()
        out = work(*args)
        self.t_last += time.perf_counter() - t0
        return out
