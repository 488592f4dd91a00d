"""aim_parquet's workloads of the "many runs" and "analyst" sections, each run by
`tools/bench.py` in a fresh process as `python scale_side.py WORKLOAD JSON_PARAMS`
(`common.serve`). Timings are taken inside the process after `import aim_parquet`; `peak_rss_mib`
is the process's peak resident memory (`VmHWM`)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

_T0 = time.perf_counter()
import aim_parquet as aim  # noqa: E402

IMPORT_S = time.perf_counter() - _T0
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import common  # noqa: E402
from bench_suite.scale_repos import build_sweep, generate_many_runs  # noqa: E402


def _rss() -> float:
    return common.status_kib("VmHWM") / 1024


def generate(p: dict[str, Any]) -> dict[str, Any]:
    t0 = time.perf_counter()
    generate_many_runs(p["repo"], p["runs"], p["points"], p.get("offset", 0))
    return {"s": time.perf_counter() - t0}


def sweep(p: dict[str, Any]) -> dict[str, Any]:
    t0 = time.perf_counter()
    rows = build_sweep(p["repo"], p["runs"], p["steps"])
    return {"s": time.perf_counter() - t0, "loss_rows": rows}


def _import_frame_library(fmt: str) -> None:
    """The frame library is imported before the timing: a user who asks for a frame has it
    loaded already, and its import (about 0.5 s for pandas here) is not the frame's cost."""
    if fmt == "polars":
        import polars  # noqa: F401
    elif fmt == "pandas":
        import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401


def frame(p: dict[str, Any]) -> dict[str, Any]:
    """A frame of `query_metrics(query)` (`fmt`: pandas, polars, arrow; `only_last`) or of
    `query_runs(query)` with `metrics` (the run-level frame), the repo opened inside the timing."""
    _import_frame_library(p.get("fmt", "pandas"))
    c0, t0 = time.process_time(), time.perf_counter()
    repo = aim.Repo(p["repo"])
    if p.get("metrics"):
        coll: Any = repo.query_runs(p["query"])
        df = coll.dataframe(metrics=p["metrics"])
    else:
        coll = repo.query_metrics(p["query"])
        only_last = bool(p.get("only_last"))
        fmt = p.get("fmt", "pandas")
        if fmt == "polars":
            df = coll.to_polars(only_last=only_last)
        elif fmt == "arrow":
            df = coll.to_arrow(only_last=only_last)
        else:
            df = coll.dataframe(only_last=only_last)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    rows = 0 if df is None else (df.num_rows if hasattr(df, "num_rows") else int(df.shape[0]))
    return {"s": seconds, "cpu_s": cpu, "rows": rows, "peak_rss_mib": _rss()}


def sparse(p: dict[str, Any]) -> dict[str, Any]:
    """`values.sparse_numpy()` of every metric `query_metrics(query)` matches."""
    t0 = time.perf_counter()
    points = sequences = 0
    for metric in aim.Repo(p["repo"]).query_metrics(p["query"]):
        _steps, values = metric.values.sparse_numpy()
        points += len(values)
        sequences += 1
    return {"s": time.perf_counter() - t0, "points": points, "sequences": sequences}


def floor(p: dict[str, Any]) -> dict[str, Any]:
    """Reading `path` (one Parquet file) with pandas or polars: the floor a frame is held to."""
    _import_frame_library(p["engine"])
    c0, t0 = time.process_time(), time.perf_counter()
    if p["engine"] == "polars":
        import polars as pl

        rows = pl.read_parquet(p["path"]).height
    else:
        import pandas as pd

        rows = len(pd.read_parquet(p["path"]))
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"s": seconds, "cpu_s": cpu, "rows": rows, "peak_rss_mib": _rss()}


def save_floor(p: dict[str, Any]) -> dict[str, Any]:
    """Writes the frame of `query` to one Parquet file (the input of `floor`)."""
    df = aim.Repo(p["repo"]).query_metrics(p["query"]).to_polars()
    df.write_parquet(p["path"])
    return {"rows": df.height}


def _import_engine(engine: str) -> None:
    """The engine is imported before the timing, as the frame libraries are (`frame`)."""
    if engine == "polars":
        import polars  # noqa: F401
    else:
        import duckdb  # noqa: F401


def _duckdb_rows(sql: str) -> int:
    import duckdb

    return int(duckdb.sql(sql).to_arrow_table().num_rows)


def dataset_scan(p: dict[str, Any]) -> dict[str, Any]:
    """The README's dataset recipe: every `loss` point of `.aim/dataset/`'s committed files
    (`current.json`), with polars or DuckDB."""
    root = Path(p["repo"]) / ".aim" / "dataset"
    _import_engine(p["engine"])
    t0 = time.perf_counter()
    current = json.loads((root / "current.json").read_text())
    files = [str(root / f) for f in current["metrics"]]
    if p["engine"] == "polars":
        import polars as pl

        rows = pl.scan_parquet(files).filter(pl.col("name") == "loss").collect().height
    else:
        rows = _duckdb_rows(f"select * from read_parquet({files}) where name = 'loss'")
    return {"s": time.perf_counter() - t0, "rows": rows, "files": len(files)}


def compact(p: dict[str, Any]) -> dict[str, Any]:
    from aim_parquet.format.paths import RepoLayout
    from aim_parquet.storage.compaction.compactor import compact_repo

    t0 = time.perf_counter()
    report = compact_repo(RepoLayout(Path(p["repo"])))
    return {"s": time.perf_counter() - t0, "points": report.points}


def repo_again(p: dict[str, Any]) -> dict[str, Any]:
    """A first query (index built or read), then `Repo(path)` made again and queried, `reps`
    times, in this warm process."""
    t0 = time.perf_counter()
    n = sum(1 for _ in aim.Repo(p["repo"]).query_runs(p["query"]).iter_runs())
    first = time.perf_counter() - t0
    again = []
    for _ in range(p.get("reps", 5)):
        t0 = time.perf_counter()
        n = sum(1 for _ in aim.Repo(p["repo"]).query_runs(p["query"]).iter_runs())
        again.append(time.perf_counter() - t0)
    return {"s": first, "again_s": again, "runs": n}


def predicate(p: dict[str, Any]) -> dict[str, Any]:
    """`repo_again` for a run predicate (`s`: the first query of this process, `again_s`: a
    `Repo(path)` made again and queried, `reps` times), then the same after `idle_s` seconds
    idle (`idle_again_s`: once the index's `FULL_CHECK_S` has passed, every sidecar is
    stat()ed again)."""
    result = repo_again(p)
    if p.get("idle_s"):
        time.sleep(p["idle_s"])
        t0 = time.perf_counter()
        n = sum(1 for _ in aim.Repo(p["repo"]).query_runs(p["query"]).iter_runs())
        result["idle_again_s"] = time.perf_counter() - t0
        assert n == result["runs"]
    return result


if __name__ == "__main__":
    common.serve(
        {
            "generate": generate,
            "sweep": sweep,
            "frame": frame,
            "sparse": sparse,
            "floor": floor,
            "save_floor": save_floor,
            "dataset_scan": dataset_scan,
            "compact": compact,
            "repo_again": repo_again,
            "predicate": predicate,
        },
        IMPORT_S,
    )
