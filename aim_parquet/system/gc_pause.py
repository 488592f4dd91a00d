"""The cyclic garbage collector paused around a block that builds many long-lived objects and
no cycles (the run index's decoding, a query's frame built in bulk): each collection it would
trigger (one per 700 allocations) walks every object made so far. A process forked while
another thread is inside such a block (a `Pool` or `DataLoader` worker started while a frame is
built) gets the collector back: the block that would restore it does not run in the child."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["gc_paused"]

_paused = False  # whether a `gc_paused` block of this process holds the collector off


@contextmanager
def gc_paused() -> Iterator[None]:
    """The collector held off inside the `with` (decoding the run index: the collections were a
    third of the time). Restored only by the block that paused it, so a nested block, or one
    entered while it was already off, leaves it as it was."""
    global _paused
    if not gc.isenabled():
        yield
        return
    _paused = True  # (set before and cleared after the switch: a fork between sees it on)
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        _paused = False


def _after_fork_in_child() -> None:
    """A child forked while a block held the collector off has it back (gc's state is inherited,
    the block's thread is not)."""
    global _paused
    if _paused:
        _paused = False
        gc.enable()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
