"""SIGINT / SIGTERM during training: finish the step, write a checkpoint, then stop.

The process then exits with the shell's status for that signal, 128 + its number (130 for
SIGINT, 143 for SIGTERM; ``exit_status``), so a scheduler sees that the run did not finish.
Waiting for the step only pays once there is progress to save: until the trainer says so
(``GracefulStop.deferring``, set once its first step finished), a signal stops at once.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def exit_status(signum: int) -> int:
    """The exit status of a process stopped by `signum`, as the shell reports it."""
    return 128 + int(signum)


class StoppedBySignal(KeyboardInterrupt):
    """A SIGINT / SIGTERM that stopped the process at once, because there was nothing new to
    checkpoint (the first step had not finished)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_status(self) -> int:
        return exit_status(self.signum)


class GracefulStop:
    """While installed (``with GracefulStop() as stop:``) and ``stop.deferring``, the first
    SIGINT / SIGTERM is only recorded in ``stop.signum`` for the loop to act on; a second one
    stops at once (KeyboardInterrupt for SIGINT, SystemExit(143) for SIGTERM; checkpoints are
    atomic). While not ``deferring`` (set by the loop once it has progress to save; cleared on
    entry), the first signal raises StoppedBySignal at once. Handlers can only be installed
    from the main thread: elsewhere this is a no-op."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.deferring = False
        self._previous: dict[int, Any] = {}

    @property
    def name(self) -> str | None:
        return signal.Signals(self.signum).name if self.signum is not None else None

    def _handle(self, signum: int, frame: FrameType | None) -> None:  # noqa: ARG002
        if self.signum is None and self.deferring:
            self.signum = signum
        elif self.signum is None:
            self.signum = signum  # a further signal takes the branches below
            raise StoppedBySignal(signum)
        elif signum == signal.SIGINT:
            raise KeyboardInterrupt
        else:
            raise SystemExit(exit_status(signum))

    def __enter__(self) -> "GracefulStop":
        self.deferring = False
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
