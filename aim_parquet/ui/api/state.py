"""What the API endpoints share: one repository, its run index, and the worker threads.

Reads run in a bounded pool of worker threads (`UiState.call`), so a slow query never blocks the
event loop or the other requests, and at most `max_workers` of them read at once. The run index
(`storage.run_index.RunIndex`, a cache of the sidecars) is refreshed under one lock: it is the
same index a `Repo` uses, so the UI keeps no copy of any data of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from aim_parquet.format.paths import RepoLayout
from aim_parquet.query.executor import RunMatch, iter_matches
from aim_parquet.query.planner import QueryPlan
from aim_parquet.storage.run_index import DamagedRun, RunIndex, RunRecord

T = TypeVar("T")

DEFAULT_WORKERS = 4


class UiState:
    """The repository a UI serves and the pool its reads run in."""

    def __init__(self, layout: RepoLayout, *, max_workers: int = DEFAULT_WORKERS) -> None:
        self.layout = layout
        self.index = RunIndex(layout)
        self.max_workers = max_workers
        self._index_lock = threading.Lock()
        self._limiter: anyio.CapacityLimiter | None = None

    def matches(self, plan: QueryPlan) -> tuple[list[RunMatch], tuple[DamagedRun, ...]]:
        """The runs (and, for a sequence query, their sequences) matching `plan`, newest first,
        and the damaged runs that were skipped. Reads metadata only (the run index)."""
        with self._index_lock:
            damaged = self.index.refresh().damaged
            found = list(iter_matches(self.layout, self.index, plan, warn=False))
        return found, damaged

    def records(self) -> list[RunRecord]:
        """Every readable run, newest first (metadata only)."""
        with self._index_lock:
            return self.index.refresh().newest_first

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in a worker thread (at most `max_workers` at once)."""
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.max_workers)
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)


def damaged_json(damaged: tuple[DamagedRun, ...]) -> list[dict[str, str]]:
    """Damaged runs as the API reports them (with what to do)."""
    return [
        {
            "hash": bad.run_hash,
            "reason": bad.reason,
            "advice": "run `aim-parquet verify --repair` to repair or quarantine it",
        }
        for bad in damaged
    ]
