"""Pausing the cyclic garbage collector around bulk creation of small objects."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many small acyclic objects.

    Sentences form no reference cycles (reference counting frees them), but the collector would
    rescan every live object again and again as millions are created: pausing it makes large
    treebanks about 1.5x faster to generate or read.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
