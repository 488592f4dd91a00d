"""What the API endpoints share: one repository, its run index, and the worker threads.

Reads run in a bounded pool of worker threads (`UiState.call`), so a slow query never blocks the
event loop or the other requests, and at most `max_workers` of them read at once. The run index
(`storage.index.run_index.RunIndex`, a cache of the sidecars) is refreshed under one lock, and a query
is then evaluated over that refresh's snapshot without the lock, so one slow query never holds up
another. It is the same index a `Repo` uses: the UI keeps no copy of any data of its own.

A query's evaluation stops after `query_time_s` (`QueryTooSlow`, with what to do) and at once
when the server is stopping (`ServerStopping`: the request is answered 503, not cut off).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from aim_parquet.errors import RepoNotFoundError
from aim_parquet.format.paths import RepoLayout
from aim_parquet.query.executor import RunMatch, execute_plan
from aim_parquet.query.planner import QueryPlan
from aim_parquet.storage.index.run_index import DamagedRun, IndexSnapshot, RunIndex, RunRecord
from aim_parquet.ui.api.errors import QueryTooSlow, ServerStopping

T = TypeVar("T")

DEFAULT_WORKERS = 4
QUERY_TIME_S = 30.0
"""How long one request may spend evaluating its query over the runs' metadata."""


class _PinnedIndex(RunIndex):
    """A run index that answers one snapshot (taken under the UI's lock) on every refresh, so
    the query engine evaluates a query over it while other requests refresh the real index."""

    def __init__(self, layout: RepoLayout, snapshot: IndexSnapshot) -> None:
        super().__init__(layout)
        self._pinned = snapshot

    def refresh(self) -> IndexSnapshot:
        return self._pinned


class UiState:
    """The repository a UI serves and the pool its reads run in."""

    def __init__(
        self,
        layout: RepoLayout,
        *,
        max_workers: int = DEFAULT_WORKERS,
        query_time_s: float = QUERY_TIME_S,
    ) -> None:
        self.layout = layout
        self.index = RunIndex(layout)
        self.max_workers = max_workers
        self.query_time_s = query_time_s
        self.stopping = threading.Event()
        self._index_lock = threading.Lock()
        self._limiter: anyio.CapacityLimiter | None = None

    def check(self) -> None:
        """ServerStopping when the server is stopping (long loops call it between items)."""
        if self.stopping.is_set():
            raise ServerStopping("the server is stopping; reload the page once it runs again")

    def snapshot(self) -> IndexSnapshot:
        """The run index brought up to date (RepoNotFoundError when the repository is gone)."""
        self.check()
        if not self.layout.aim_dir.is_dir():
            raise RepoNotFoundError(
                f"the repository {self.layout.root} is gone (no {self.layout.aim_dir}): restore "
                "it, or stop this server and start `aim-parquet up --repo DIR` on another one"
            )
        with self._index_lock:
            return self.index.refresh()

    def matches(self, plan: QueryPlan) -> tuple[list[RunMatch], tuple[DamagedRun, ...]]:
        """The runs (and, for a sequence query, their sequences) matching `plan`, newest first,
        and the damaged runs that were skipped. Reads metadata only (the run index)."""
        snapshot = self.snapshot()
        deadline = time.monotonic() + self.query_time_s
        found: list[RunMatch] = []
        skipped: list[DamagedRun] = []  # runs whose files fail while they are matched
        pinned = _PinnedIndex(self.layout, snapshot)
        steps = execute_plan(
            self.layout, pinned, plan, with_misses=True, warn=False, skipped=skipped
        )
        for step in steps:
            if step.match is not None:
                found.append(step.match)
            self.check()
            if time.monotonic() > deadline and step.position < step.total:
                raise QueryTooSlow(
                    f"the query ran for over {self.query_time_s:g} s and was stopped after "
                    f"{step.position:,} of {step.total:,} runs; make it cheaper (compare params "
                    "directly rather than building large values) or narrow it"
                )
        return found, (*snapshot.damaged, *skipped)

    def records(self) -> Sequence[RunRecord]:
        """Every readable run, newest first (metadata only)."""
        return self.snapshot().newest_first

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in a worker thread (at most `max_workers` at once)."""
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.max_workers)
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)


def damaged_json(damaged: tuple[DamagedRun, ...]) -> list[dict[str, str]]:
    """Damaged runs as the API reports them (with what to do). A run this user may not read
    is not damaged: its advice says so."""
    return [
        {
            "hash": bad.run_hash,
            "reason": bad.reason,
            "advice": (
                "permission denied, not damage: read it as a user who may, or ask its owner"
                if bad.is_permission_denied
                else "run `aim-parquet verify --repair` to repair or quarantine it"
            ),
        }
        for bad in damaged
    ]
