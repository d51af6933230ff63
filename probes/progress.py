"""Progress bars of a probing run: a tqdm bar on stderr, or nothing (``--quiet``).

    with Progress(total=120, desc="[gpt2] probing", enabled=True, unit="fit") as bar:
        bar.stage("upos: λ 1/4")
        bar.update(1)

Every long stage of ``stratascope probe`` reports through one of these: extraction (sentences,
with rate and ETA), each task's fits (λ path, control, MDL blocks, cumulative probes, bootstrap),
per model, and erasure. A disabled bar costs nothing, so callers need no checks.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

# A callback that advances a bar by n units and says which stage is running.
Tick = Callable[[int, str], None]


def no_tick(n: int, stage: str) -> None:
    """The ``Tick`` of a run without a bar."""


class Progress:
    """A tqdm bar of ``total`` units on stderr when ``enabled``, else a no-op."""

    def __init__(self, total: int, desc: str, enabled: bool, unit: str = "it"):
        self.bar: Any = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def stage(self, text: str) -> None:
        """Show what is running now (the bar's postfix)."""
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)

    def tick(self, n: int, stage: str) -> None:
        """A ``Tick``: show ``stage``, advance by ``n``."""
        if self.bar is not None:
            self.bar.set_postfix_str(stage, refresh=False)
            self.bar.update(n)

    def counter(self) -> Callable[[int, int], None]:
        """A ``progress(done, total)`` callback (extraction, the activation store) that moves
        the bar to ``done``."""
        def report(done: int, total: int) -> None:
            if self.bar is not None:
                if self.bar.total != total:
                    self.bar.total = total
                self.bar.update(done - self.bar.n)
        return report

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
