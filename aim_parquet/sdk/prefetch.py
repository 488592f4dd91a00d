"""Points read ahead while a query's metrics are iterated (`for m in repo.query_metrics(q)`):
the sequences of the next `BATCH_RUNS` closed runs share a batch, and the first sequence of a
batch whose values are asked for reads the points of every sequence of the batch at once, from
the points cache (`storage.index.points_cache`, read once per iteration), from the analyst
dataset's shared files (each bucket file read once per iteration: `dataset_read.BucketCache`; an
iteration whose first batch has fewer than `MIN_SHARED_READ_RUNS` runs reads their own files) or
in one pass over the segments of runs without compacted files (`storage.online.bulk_read`; what
the batches read so is written to the points cache once, when the iteration ends and its last
batch was read: `finish_iteration`). A sequence the batch could not read reads its own files, as
without a batch. The arrays are those `Sequence` reads itself: same steps, values, dtypes
(`epoch` int64 unless a point has none)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.index.points_cache import PointsCache
from aim_parquet.storage.online.bulk_read import read_metrics_bulk
from aim_parquet.system.gc_pause import gc_paused

if TYPE_CHECKING:
    from aim_parquet.sdk.sequence import Sequence

BATCH_RUNS = 256
Points = tuple[np.ndarray[Any, Any], ...]  # steps, values, epochs, timestamps


class MetricBatch:
    """The points of a batch of metric sequences, read on first need."""

    def __init__(self, layout: RepoLayout, cache: dict[str, Any], seqs: list[Sequence]) -> None:
        """`cache`: one dict for every batch of an iteration (it keeps the dataset's bucket
        files read, and `stat_keys`: the sidecar stat keys of the run index's refresh the
        query's records came from; the dataset code is imported only when a batch is read)."""
        self._layout = layout
        self._cache = cache
        self._wanted = [(s.run.hash, s.info) for s in seqs]
        self._points: dict[int, Points] | None = None
        cache["batches"] = cache.get("batches", 0) + 1
        for position, seq in enumerate(seqs):
            seq._prefetch = (self, position)

    def points(self, position: int) -> Points | None:
        if self._points is None:
            with gc_paused():
                self._points = self._load()
                self._cache["loaded"] = self._cache.get("loaded", 0) + 1
                _save_when_done(self._cache)
        return self._points.pop(position, None)

    def _load(self) -> dict[int, Points]:
        from aim_parquet.storage.compaction import dataset_read

        wanted = self._wanted
        keys: dict[str, str] = self._cache.get("stat_keys") or {}
        out: dict[int, Points] = {}
        cache = self._cache.get("points")
        if cache is None:
            cache = self._cache["points"] = PointsCache(self._layout)
        if cache.load(len({h for h, _info in wanted})):  # (the batch's runs are all closed)
            for position, (run_hash, info) in enumerate(wanted):
                points = cache.take(run_hash, info.seq_id, keys.get(run_hash))
                if points is not None:
                    out[position] = points
        by_run: dict[str, set[str]] = {}
        for position, (run_hash, info) in enumerate(wanted):
            if position not in out:
                by_run.setdefault(run_hash, set()).add(info.seq_id)
        committed: dict[tuple[str, str], Points] = {}
        buckets = self._cache.get("buckets")
        if buckets is None and len(by_run) >= dataset_read.MIN_SHARED_READ_RUNS:
            buckets = self._cache["buckets"] = dataset_read.BucketCache()
        # (a few runs alone read their own files, as a frame does)
        if buckets is not None and by_run:
            keyed = self._cache.get("stat_keys")
            committed = dataset_read.committed_metric_points(self._layout, by_run, buckets, keyed)
        rest = []
        for position, (run_hash, info) in enumerate(wanted):
            if position in out:
                continue
            points = committed.get((run_hash, info.seq_id))
            if points is None:
                rest.append(position)
                continue
            steps, values, epochs, stamps = points
            if not np.isnan(epochs).any():  # every point has an epoch: int64, as read alone
                epochs = epochs.astype(np.int64)
            out[position] = (steps, values, epochs, stamps)
        if rest:
            bulk = read_metrics_bulk(self._layout, [wanted[p] for p in rest])
            for j, points in bulk.items():
                out[rest[j]] = points
            found = [(wanted[rest[j]], points) for j, points in bulk.items()]
            cache.add([(h, info.seq_id, keys.get(h), p) for (h, info), p in found])
        return out


def finish_iteration(cache: dict[str, Any]) -> None:
    """At the end of a query's iteration: write the points cache once with what its batches read
    from segments (`storage.index.points_cache`: only when enough runs were), now or, when
    batches are still to be read (the sequences were listed before their values were asked
    for), after the last of them is."""
    cache["finished"] = True
    _save_when_done(cache)


def _save_when_done(cache: dict[str, Any]) -> None:
    points = cache.get("points")
    if (
        cache.get("finished")
        and cache.get("loaded", 0) == cache.get("batches", 0)
        and points is not None
        and "stat_keys" in cache
    ):
        points.save(cache["stat_keys"])
