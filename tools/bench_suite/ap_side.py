"""aim_parquet's half of the side-by-side workloads; run by `tools/bench.py` in fresh processes
with aim_parquet's interpreter as `python ap_side.py WORKLOAD JSON_PARAMS` (see `common.serve`).

Each workload mirrors the function of the same name in `aim_side.py` call for call; timings are
taken inside the process after `import aim_parquet` (its cost is reported as `import_s`).
"""

from __future__ import annotations

import importlib.abc
import io
import json
import sys
import time
from pathlib import Path
from typing import Any


class _NoPandas(importlib.abc.MetaPathFinder):
    """Makes `import pandas` fail, as if it were not installed (params `"block_pandas": true`):
    shows what pyarrow's lazy pandas import costs a fresh process."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> None:
        if name.split(".")[0] == "pandas":
            raise ModuleNotFoundError(name)


if len(sys.argv) > 2 and json.loads(sys.argv[2]).get("block_pandas"):
    sys.meta_path.insert(0, _NoPandas())

_T0 = time.perf_counter()
import aim_parquet as aim  # noqa: E402

IMPORT_S = time.perf_counter() - _T0

import common  # noqa: E402

QUIET: dict[str, Any] = {
    "system_tracking_interval": None,
    "capture_terminal_logs": False,
    "log_system_params": False,
}


def _run_kwargs(p: dict[str, Any]) -> dict[str, Any]:
    return dict(QUIET, system_tracking_interval=p.get("system_tracking_interval"))


class _Bare:
    def track(
        self,
        value: Any,
        name: Any = None,
        step: Any = None,
        epoch: Any = None,
        *,
        context: Any = None,
    ) -> None:
        pass


def track(p: dict[str, Any]) -> dict[str, Any]:
    """`calls` x `run.track(float, name="loss", step=i, context={"subset": "train"})`."""
    n = p["calls"]
    bare = _Bare()
    t0 = time.perf_counter()
    for i in range(n):
        bare.track(1.0 / (i + 1), name="loss", step=i, context={"subset": "train"})
    bare_s = time.perf_counter() - t0
    run = aim.Run(repo=p["repo"], **_run_kwargs(p))
    rss0 = common.status_kib("VmRSS")
    t0 = time.perf_counter()
    for i in range(n):
        run.track(1.0 / (i + 1), name="loss", step=i, context={"subset": "train"})
    calls_s = time.perf_counter() - t0
    run.close()
    total_s = time.perf_counter() - t0
    return {
        "track_us": common.per_call_us(calls_s, n),
        "track_close_us": common.per_call_us(total_s, n),
        "bare_us": common.per_call_us(bare_s, n),
        "rss_growth_mib": max(0, common.status_kib("VmHWM") - rss0) / 1024,
        "points": n,
    }


def write(p: dict[str, Any]) -> dict[str, Any]:
    """`runs` runs one after another, each `metrics` x `steps` points and params; timed from
    `Run()` to `close()` (the seeded curves are made outside the timed part)."""
    names = common.metric_names(p["metrics"])
    rss0 = common.status_kib("VmRSS")
    seconds = 0.0
    for r in range(p["runs"]):
        curves = common.loss_curves(p["seed"], r, p["metrics"], p["steps"], is_float32=p["float32"])
        t0 = time.perf_counter()
        run = aim.Run(repo=p["repo"], **QUIET)
        run["hparams"] = common.hparams(r)
        for step in range(p["steps"]):
            epoch = step // 100
            for k, name in enumerate(names):
                run.track(
                    curves[k][step], name=name, step=step, epoch=epoch, context=common.CONTEXT
                )
        run.close()
        seconds += time.perf_counter() - t0
    points = p["runs"] * p["metrics"] * p["steps"]
    peak = common.status_kib("VmHWM")
    return {
        "s": seconds,
        "points": points,
        "peak_rss_mib": peak / 1024,
        "rss_growth_mib": (peak - rss0) / 1024,
    }


def _raw_png(array: Any) -> bytes:
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def objects(p: dict[str, Any]) -> dict[str, Any]:
    """`calls` x `run.track(Image(64x64 RGB) | Distribution(10,000 samples), name=..., step=i)`,
    including `close()`; also the raw library call the object wraps, for the issue's target."""
    import numpy as np

    n = p["calls"]
    if p["kind"] == "image":
        pool = common.image_pool(p["seed"])
        make, raw = aim.Image, _raw_png
    else:
        pool = common.sample_pool(p["seed"])
        make, raw = aim.Distribution, lambda a: np.histogram(a, bins=64)
    t0 = time.perf_counter()
    for i in range(n):
        raw(pool[i % len(pool)])
    raw_s = time.perf_counter() - t0
    run = aim.Run(repo=p["repo"], **QUIET)
    t0 = time.perf_counter()
    for i in range(n):
        run.track(make(pool[i % len(pool)]), name=p["kind"], step=i)
    run.close()
    total_s = time.perf_counter() - t0
    return {"per_call_us": common.per_call_us(total_s, n), "raw_us": common.per_call_us(raw_s, n)}


def read(p: dict[str, Any]) -> dict[str, Any]:
    """Open the repo, run `query_metrics(query)` and read every match's steps and values."""
    t0 = time.perf_counter()
    repo = aim.Repo(p["repo"])
    points = sequences = 0
    for collection in repo.query_metrics(p["query"]).iter_runs():
        for metric in collection:
            steps, values = metric.values.sparse_numpy()
            points += len(values)
            sequences += 1
    return {"s": time.perf_counter() - t0, "points": points, "sequences": sequences}


def query_runs(p: dict[str, Any]) -> dict[str, Any]:
    """The first `query_runs(query)` of this process (repo opened inside the timing), then
    `warm_reps` more on the same `Repo`."""
    t0 = time.perf_counter()
    repo = aim.Repo(p["repo"])
    hashes = [c.run.hash for c in repo.query_runs(p["query"]).iter_runs()]
    first_s = time.perf_counter() - t0
    warm = []
    for _ in range(p.get("warm_reps", 0)):
        t0 = time.perf_counter()
        hashes = [c.run.hash for c in repo.query_runs(p["query"]).iter_runs()]
        warm.append(time.perf_counter() - t0)
    return {"s": first_s, "warm_s": warm, "runs": len(hashes)}


def export(p: dict[str, Any]) -> dict[str, Any]:
    """The whole repo as one DataFrame: `query_metrics("").dataframe()` or `.to_polars()`."""
    t0 = time.perf_counter()
    collection = aim.Repo(p["repo"]).query_metrics("")
    frame = collection.to_polars() if p["fmt"] == "polars" else collection.dataframe()
    seconds = time.perf_counter() - t0
    return {"s": seconds, "rows": int(frame.shape[0]), "columns": int(frame.shape[1])}


def frame(p: dict[str, Any]) -> dict[str, Any]:
    """`query_metrics(query).dataframe()` in a fresh process (pandas imported before the timing,
    the repo opened inside it)."""
    import pandas  # noqa: F401

    t0 = time.perf_counter()
    df = aim.Repo(p["repo"]).query_metrics(p["query"]).dataframe()
    seconds = time.perf_counter() - t0
    return {
        "s": seconds,
        "rows": int(df.shape[0]),
        "peak_rss_mib": common.status_kib("VmHWM") / 1024,
    }


def create_runs(p: dict[str, Any]) -> dict[str, Any]:
    """`runs` small runs (experiment, params, one `loss` point each), one after another."""
    t0 = time.perf_counter()
    for i in range(p["offset"], p["offset"] + p["runs"]):
        run = aim.Run(repo=p["repo"], experiment=f"exp-{i % 10}", **QUIET)
        run["hparams"] = common.hparams(i)
        for step in range(p.get("points", 1)):
            run.track(0.01 * (i % 100) / (step + 1), name="loss", step=step)
        run.close()
    return {"s": time.perf_counter() - t0}


def compact(p: dict[str, Any]) -> dict[str, Any]:
    """`compact_repo` on the whole repo (what `aim-parquet compact` does), timed in-process."""
    from aim_parquet.format.paths import RepoLayout
    from aim_parquet.storage import compact_repo

    t0 = time.perf_counter()
    report = compact_repo(RepoLayout(Path(p["repo"])))
    seconds = time.perf_counter() - t0
    statuses = sorted({r.status for r in report.runs})
    return {"s": seconds, "points": report.points, "statuses": statuses}


if __name__ == "__main__":
    common.serve(
        {
            "track": track,
            "write": write,
            "objects": objects,
            "read": read,
            "query_runs": query_runs,
            "export": export,
            "create_runs": create_runs,
            "frame": frame,
            "compact": compact,
        },
        IMPORT_S,
    )
