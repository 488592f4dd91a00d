"""Aim 3.29's half of the side-by-side workloads; run by `tools/bench.py` in fresh processes with
the interpreter of `.venv-aim` (never aim_parquet's) as `python aim_side.py WORKLOAD JSON_PARAMS`.

Each workload mirrors the function of the same name in `ap_side.py` call for call. Aim specifics:
runs are made with `system_tracking_interval=None, capture_terminal_logs=False,
log_system_params=False` (unless a workload turns system tracking on); queries run with
`QueryReportMode.DISABLED` (no progress bar); a closed run is visible to SDK queries only after it
is indexed, so `reindex` (what `aim storage reindex -y` does) runs after writing, timed apart;
reads call `metric.values.sparse_numpy()` as aim_parquet's side does (in Aim 3.29 it returns
hashed keys instead of steps, reading one key and one value per point); with `"real_steps": true`
they call `metric.data.view(["val"]).numpy()`, Aim's way to get the real steps, which reads the
step column as well.
"""

from __future__ import annotations

import time
from typing import Any

_T0 = time.perf_counter()
import aim  # noqa: E402

IMPORT_S = time.perf_counter() - _T0

import common  # noqa: E402
from aim.sdk.types import QueryReportMode  # noqa: E402

QUIET: dict[str, Any] = {
    "system_tracking_interval": None,
    "capture_terminal_logs": False,
    "log_system_params": False,
}
NO_BAR = QueryReportMode.DISABLED


def _run_kwargs(p: dict[str, Any]) -> dict[str, Any]:
    return dict(QUIET, system_tracking_interval=p.get("system_tracking_interval"))


def track(p: dict[str, Any]) -> dict[str, Any]:
    n = p["calls"]
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
        "rss_growth_mib": max(0, common.status_kib("VmHWM") - rss0) / 1024,
        "points": n,
    }


def write(p: dict[str, Any]) -> dict[str, Any]:
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


def objects(p: dict[str, Any]) -> dict[str, Any]:
    n = p["calls"]
    if p["kind"] == "image":
        pool, make = common.image_pool(p["seed"]), aim.Image
    else:
        pool, make = common.sample_pool(p["seed"]), aim.Distribution
    run = aim.Run(repo=p["repo"], **QUIET)
    t0 = time.perf_counter()
    for i in range(n):
        run.track(make(pool[i % len(pool)]), name=p["kind"], step=i)
    run.close()
    return {"per_call_us": common.per_call_us(time.perf_counter() - t0, n)}


def reindex(p: dict[str, Any]) -> dict[str, Any]:
    """Index every run so that SDK queries see it (`aim storage reindex -y`)."""
    t0 = time.perf_counter()
    aim.Repo(p["repo"])._recreate_index()
    return {"s": time.perf_counter() - t0}


def read(p: dict[str, Any]) -> dict[str, Any]:
    t0 = time.perf_counter()
    repo = aim.Repo(p["repo"])
    points = sequences = 0
    for collection in repo.query_metrics(p["query"], report_mode=NO_BAR).iter_runs():
        for metric in collection:
            if p.get("real_steps"):
                steps, (values,) = metric.data.view(["val"]).numpy()
            else:
                steps, values = metric.values.sparse_numpy()
            points += len(values)
            sequences += 1
    return {"s": time.perf_counter() - t0, "points": points, "sequences": sequences}


def query_runs(p: dict[str, Any]) -> dict[str, Any]:
    t0 = time.perf_counter()
    repo = aim.Repo(p["repo"])
    hashes = [c.run.hash for c in repo.query_runs(p["query"], report_mode=NO_BAR).iter_runs()]
    first_s = time.perf_counter() - t0
    warm = []
    for _ in range(p.get("warm_reps", 0)):
        t0 = time.perf_counter()
        hashes = [c.run.hash for c in repo.query_runs(p["query"], report_mode=NO_BAR).iter_runs()]
        warm.append(time.perf_counter() - t0)
    return {"s": first_s, "warm_s": warm, "runs": len(hashes)}


def export(p: dict[str, Any]) -> dict[str, Any]:
    t0 = time.perf_counter()
    frame = aim.Repo(p["repo"]).query_metrics("", report_mode=NO_BAR).dataframe()
    seconds = time.perf_counter() - t0
    return {"s": seconds, "rows": int(frame.shape[0]), "columns": int(frame.shape[1])}


def create_runs(p: dict[str, Any]) -> dict[str, Any]:
    t0 = time.perf_counter()
    for i in range(p["offset"], p["offset"] + p["runs"]):
        run = aim.Run(repo=p["repo"], experiment=f"exp-{i % 10}", **QUIET)
        run["hparams"] = common.hparams(i)
        for step in range(p.get("points", 1)):
            run.track(0.01 * (i % 100) / (step + 1), name="loss", step=step)
        run.close()
    return {"s": time.perf_counter() - t0}


def frame(p: dict[str, Any]) -> dict[str, Any]:
    """`query_metrics(query).dataframe()` in a fresh process (pandas imported before the timing,
    the repo opened inside it)."""
    import pandas  # noqa: F401

    t0 = time.perf_counter()
    df = aim.Repo(p["repo"]).query_metrics(p["query"], report_mode=NO_BAR).dataframe()
    seconds = time.perf_counter() - t0
    return {
        "s": seconds,
        "rows": int(df.shape[0]),
        "peak_rss_mib": common.status_kib("VmHWM") / 1024,
    }


if __name__ == "__main__":
    common.serve(
        {
            "track": track,
            "write": write,
            "objects": objects,
            "reindex": reindex,
            "read": read,
            "query_runs": query_runs,
            "export": export,
            "create_runs": create_runs,
            "frame": frame,
        },
        IMPORT_S,
    )
