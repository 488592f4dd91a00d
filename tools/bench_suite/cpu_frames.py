"""Wall and CPU seconds of the run-level frame, the metric frame and `sparse_numpy()` iteration
in a fresh process (`python cpu_frames.py REPO WORKLOAD`, WORKLOAD one of runs (also runs_where: with
a predicate, runs_arrow: `to_arrow()`), df (also only_last: `dataframe(only_last=True)`),
sparse, and the parts
of them the run index decides: summaries, match, match_last): the
CPU time is the process's own (`time.process_time`), which another process on a shared machine
disturbs less than the wall time. Prints one JSON line; with `--calls`, the number of Python
function calls instead (cProfile: the same on any machine)."""

from __future__ import annotations

import cProfile
import io
import json
import pstats
import sys
import time
from pathlib import Path

import pandas  # noqa: F401  (a user who asks for a frame has it loaded already)

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.query.executor import iter_matches
from aim_parquet.query.planner import plan_query
from aim_parquet.storage.index.run_index import RunIndex


def main() -> None:
    root, workload = sys.argv[1], sys.argv[2]
    if sys.argv[3:] == ["--calls"]:  # the Python calls it makes instead (cProfile)
        profile = cProfile.Profile()
        profile.runcall(run, root, workload)
        print(json.dumps({"calls": pstats.Stats(profile, stream=io.StringIO()).total_calls}))  # type: ignore[attr-defined]
        return
    wall, cpu = time.perf_counter(), time.process_time()
    run(root, workload)
    out = {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}
    print(json.dumps({k: round(v, 3) for k, v in out.items()}))


def run(root: str, workload: str) -> None:
    repo = aim.Repo(root)
    if workload == "runs":
        repo.query_runs("").dataframe(metrics=["loss"])
    elif workload == "runs_where":  # a predicate the run index's typed columns decide
        repo.query_runs("run.hparams.lr < 0.0005").dataframe(metrics=["loss"])
    elif workload == "runs_arrow":
        repo.query_runs("").to_arrow(metrics=["loss"])
    elif workload == "df":
        repo.query_metrics("metric.name == 'loss'").dataframe()
    elif workload == "only_last":  # the metric frame's last point of each sequence
        repo.query_metrics("metric.name == 'loss'").dataframe(only_last=True)
    elif workload == "summaries":  # the run-level frame's summary columns alone
        repo.query_runs("").to_arrow(include_props=False, include_params=False, metrics=["loss"])
    elif workload in ("match", "match_last"):  # the query's matching alone, summaries decoded
        query = "metric.name == 'loss'"
        query += " and metric.last < 0.5" if workload == "match_last" else ""
        for match in iter_matches(
            RepoLayout(Path(root)),
            RunIndex.shared(RepoLayout(Path(root))),
            plan_query(query, "metric"),
        ):
            match.sequences  # noqa: B018
    else:
        for metric in repo.query_metrics("metric.name == 'loss'"):
            metric.values.sparse_numpy()


if __name__ == "__main__":
    main()
