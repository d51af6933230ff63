"""The training progress bar (tqdm), or nothing: one object, so the loop needs no checks."""

from __future__ import annotations

from typing import Any


class ProgressBar:
    """A tqdm bar of `total` steps starting at `initial` when `enabled`, else a no-op."""

    def __init__(self, enabled: bool, total: int, initial: int):
        self._bar: Any = None
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True)

    def show(self, **numbers: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix(**numbers, refresh=False)

    def write(self, line: str) -> None:
        if self._bar is not None:
            self._bar.write(line)

    def update(self) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
