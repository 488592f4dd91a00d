"""The cyclic garbage collector paused around a block that builds many long-lived objects and
no cycles (the run index's decoding, a query's frame built in bulk): each collection it would
trigger (one per 700 allocations) walks every object made so far."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["gc_paused"]


@contextmanager
def gc_paused() -> Iterator[None]:
    """The collector held off inside the `with` (decoding the run index: the collections were a
    third of the time). Restored only by the block that paused it, so a nested block, or one
    entered while it was already off, leaves it as it was."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
