"""The run-predicate workload group: creating runs, and `query_runs` over a few hundred runs on
both sides and over 10,000 runs on aim_parquet's (Aim's figure extrapolated: building that many
Aim runs takes longer than the whole suite)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench_suite.stats import Measure, Row, fmt_value, measure
from bench_suite.suite import Suite, pick, values_of, walls

MANY = "run.hparams.lr < 0.005 and run.experiment == 'exp-3'"


def many_runs(s: Suite) -> None:
    c = s.cfg
    small = c.aim_many_runs
    factor = c.many_runs / small
    mine, theirs = s.alternate(
        f"create {small} runs",
        lambda i: ("create_runs", {"repo": s.repo(f"ap-small-{i}"), "runs": small, "offset": 0}),
        lambda i: ("create_runs", {"repo": s.repo(f"aim-small-{i}"), "runs": small, "offset": 0}),
    )
    s.drop(
        *[f"ap-small-{i}" for i in range(c.reps - 1)],
        *[f"aim-small-{i}" for i in range(c.reps - 1)],
    )
    ap_small, aim_small = s.repo(f"ap-small-{c.reps - 1}"), s.repo(f"aim-small-{c.reps - 1}")
    reindex = (
        s.aim("reindex", {"repo": aim_small}, f"Aim reindex ({small} runs)") if theirs else None
    )
    q = {"query": MANY, "warm_reps": c.warm_reps}
    q_mine, q_theirs = s.alternate(
        f"run predicate over {small} runs",
        lambda i: ("query_runs", dict(q, repo=ap_small)),
        (lambda i: ("query_runs", dict(q, repo=aim_small))) if reindex else None,
    )
    # aim_parquet: the big repo, built by two writer processes at once (this machine's cores)
    half = c.many_runs // 2
    started = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        parts = list(
            pool.map(
                lambda job: s.ours(
                    "create_runs",
                    {"repo": s.repo("ap-many"), "runs": job[1], "offset": job[0]},
                    f"create {c.many_runs:,} runs, part {job[0] // max(half, 1) + 1}/2",
                ),
                [(0, half), (half, c.many_runs - half)],
            )
        )
    build_s = time.perf_counter() - started
    big, _ = s.alternate(
        f"run predicate over {c.many_runs:,} runs",
        lambda i: ("query_runs", dict(q, repo=s.repo("ap-many"))),
        None,
    )
    s.drop("ap-many", ap_small.rsplit("/", 1)[-1], aim_small.rsplit("/", 1)[-1])

    def per_run(results: Any) -> Measure | None:
        return measure([v / small for v in values_of(results, "s")], "s") if results else None

    def warm(results: Any) -> Measure | None:
        return measure([min(r.data["warm_s"]) for r in results], "s") if results else None

    aim_create = pick(theirs, "s", "s")
    aim_build = None
    if aim_create is not None and reindex is not None:
        aim_build = measure([v + reindex.data["s"] for v in aim_create.values], "s").scaled(factor)
    x = f"Aim: measured over {small} runs x {factor:g} (linear: Aim evaluates the predicate run by run)"
    s.extra["many_built"] = all(parts)
    s.section(
        f"Run predicates over {c.many_runs:,} runs",
        f'`query_runs("{MANY}")` (matches 5% of runs). Each run has an experiment, params and one '
        f"`loss` point, made by `Run()`. Aim is measured on {small} runs only and extrapolated to "
        f"{c.many_runs:,}: creating {c.many_runs:,} Aim runs (and indexing them) would take it about "
        f"{fmt(aim_build)} here, longer than this whole suite. Fresh = first query of a new process, "
        f"timed inside it after import; warm = best of {c.warm_reps} more on the same `Repo`.",
        [
            Row(
                "create a run (params, 1 point, close), per run",
                per_run(mine),
                per_run(theirs),
                note=f"{small} runs per repetition, one process",
            ),
            Row(
                f"run predicate over {small} runs, fresh process",
                pick(q_mine, "s", "s"),
                pick(q_theirs, "s", "s"),
            ),
            Row(f"run predicate over {small} runs, warm", warm(q_mine), warm(q_theirs)),
            s.add(
                "many_fresh",
                Row(
                    f"run predicate over {c.many_runs:,} runs, fresh process",
                    pick(big, "s", "s"),
                    pick(q_theirs, "s", "s").scaled(factor) if q_theirs else None,
                    note=x,
                ),
            ),
            Row("  ... the same, process wall time (start, import, query)", walls(big), None),
            s.add(
                "many_warm",
                Row(
                    f"run predicate over {c.many_runs:,} runs, warm",
                    warm(big),
                    warm(q_theirs).scaled(factor) if q_theirs else None,
                    note=x,
                ),
            ),
            Row(
                f"build {c.many_runs:,} runs",
                measure([build_s], "s"),
                aim_build,
                note="aim_parquet: 2 writer processes at once; Aim: one process, plus `aim storage reindex`",
            ),
        ],
    )


def fmt(m: Measure | None) -> str:
    return fmt_value(m.median, m.unit) if m is not None else "(not measured)"
