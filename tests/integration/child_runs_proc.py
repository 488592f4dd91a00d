"""A training script whose multiprocessing workers open runs of their own (run as a subprocess).

usage: child_runs_proc.py REPO KIND START_METHOD
  KIND pool       `with Pool(2, initializer=...)` per epoch (workers end by SIGTERM on exit)
  KIND poolclose  `Pool(2, initializer=...)`, `close()` + `join()` (workers end normally)
  KIND executor   `ProcessPoolExecutor(2, initializer=...)` per epoch
  KIND dataloader torch `DataLoader(num_workers=2)`, each worker opens a run in worker_init_fn
The parent tracks `loss`; each worker run tracks `w` and, after each point, writes how many it
tracked to `REPO/tracked-<run hash>` (one write: the parent reads what every worker tracked).
"""

from __future__ import annotations

import functools
import multiprocessing as mp
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import aim_parquet as aim

_worker: dict[str, Any] = {}


def _open_worker_run(repo: str) -> None:
    _worker["run"] = aim.Run(
        repo=repo, experiment="worker", system_tracking_interval=None, capture_terminal_logs=False
    )
    _worker["repo"], _worker["n"] = repo, 0


def _work(x: int) -> int:
    run = _worker["run"]
    run.track(float(x), name="w")
    _worker["n"] += 1
    path = os.path.join(_worker["repo"], f"tracked-{run.hash}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, str(_worker["n"]).encode())
    os.close(fd)
    return x * x


def _epoch(kind: str, ctx: Any, repo: str) -> list[int]:
    init: dict[str, Any] = {"initializer": _open_worker_run, "initargs": (repo,)}
    if kind == "pool":
        with ctx.Pool(2, **init) as pool:
            return list(pool.map(_work, range(20), chunksize=1))
    if kind == "poolclose":
        pool = ctx.Pool(2, **init)
        out = list(pool.map(_work, range(20), chunksize=1))
        pool.close()
        pool.join()
        return out
    if kind == "executor":
        with ProcessPoolExecutor(2, mp_context=ctx, **init) as ex:
            return list(ex.map(_work, range(20)))
    return _dataloader_epoch(ctx, repo)


class _Items:
    """A map-style dataset: item i is `_work(i)` (tracked into the worker's own run)."""

    def __len__(self) -> int:
        return 20

    def __getitem__(self, i: int) -> int:
        return _work(i)


def _init_dataloader_worker(repo: str, _worker_id: int) -> None:
    _open_worker_run(repo)


def _dataloader_epoch(ctx: Any, repo: str) -> list[int]:
    from torch.utils.data import DataLoader

    loader = DataLoader(
        _Items(),
        batch_size=4,
        num_workers=2,
        multiprocessing_context=ctx,
        worker_init_fn=functools.partial(_init_dataloader_worker, repo),
    )
    return [int(v) for batch in loader for v in batch.tolist()]


def main() -> None:
    repo, kind, start = sys.argv[1], sys.argv[2], sys.argv[3]
    run = aim.Run(
        repo=repo, experiment="main", system_tracking_interval=None, capture_terminal_logs=False
    )
    print("hash", run.hash, flush=True)
    ctx = mp.get_context(start)
    step = 0
    for epoch in range(2):
        for value in _epoch(kind, ctx, repo):
            run.track(float(value), name="loss", step=step, epoch=epoch)
            step += 1
    run.close()
    print("done", step, flush=True)


if __name__ == "__main__":
    main()
