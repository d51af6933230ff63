"""Peak RSS per stage of a ``stratascope`` run, for the benchmarks (imported in the child process).

    import bench.rss_stages as rss
    rss.start()                       # before app.cli.main
    ...                               # the run
    print(rss.report())               # {"[tag] extracting": MB, "probing model 'tag' | upos: λ path": MB, ...}

A thread reads VmRSS from /proc every 0.2 s and charges it to the stage the run's progress bars
(``probes.progress.Progress``) last named — the bar's description and its latest stage, so the
RSS of a step is charged to the step whose tick preceded it. This wraps ``Progress`` in this
process only; the run's bars stay silent under ``--quiet``, as they are.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import probes.progress as progress

_state = {"stage": "start"}
_peaks: dict[str, float] = {}
_stop = threading.Event()


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _sample() -> None:
    while not _stop.is_set():
        key = _state["stage"]
        _peaks[key] = max(_peaks.get(key, 0.0), _rss_mb())
        _stop.wait(0.2)


def start() -> None:
    """Wrap ``Progress`` so that every bar names the running stage, and start sampling."""
    cls = progress.Progress
    init, tick, counter = cls.__init__, cls.tick, cls.counter

    def _init(self: Any, total: int, desc: str, enabled: bool, unit: str = "it") -> None:
        init(self, total, desc, enabled, unit)
        self._rss_desc = desc
        _state["stage"] = desc

    def _tick(self: Any, n: int, stage: str) -> None:
        _state["stage"] = f"{self._rss_desc} | {stage}"
        tick(self, n, stage)

    def _counter(self: Any) -> Any:
        _state["stage"] = self._rss_desc
        return counter(self)

    cls.__init__, cls.tick, cls.counter = _init, _tick, _counter
    threading.Thread(target=_sample, daemon=True).start()


def report() -> dict[str, float]:
    """Peak RSS (MB) per stage, in the order the stages first ran."""
    _stop.set()
    time.sleep(0.05)
    return {k: round(v, 1) for k, v in _peaks.items()}
