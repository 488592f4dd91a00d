"""The "many runs" and "analyst" sections (issue 17): frames and the open dataset at scale.

Many runs: `scale_runs` closed runs of 5 `loss` points (generated: `scale_repos`), a metric frame,
`sparse_numpy()` over every metric, the open files through polars and DuckDB (the shared files of
`.aim/dataset/`; compaction leaves such small runs' segments as written, so the per-run Parquet
glob holds none of them), compaction and its files per run, the first query and
`Repo(path)` again, and a run predicate over `predicate_runs` runs. Aim is measured side by side
on `aim_scale_runs` runs that both systems make with `Run()`: Aim's frame and reads go run by run
through RocksDB, so a larger repo only scales its figure linearly, and making 10,000 Aim runs
(and indexing them) would take longer than the whole suite.

Analyst: a `sweep_runs` x `sweep_steps` sweep (train/val `loss` and `acc`, resumed and archived
runs), whose `loss` frame and whole-repo frame, as written and after compaction, are held to the
floor: the same rows read from one Parquet file by pandas or polars.
"""

from __future__ import annotations

from typing import Any

from bench_suite.stats import Measure, Row, measure
from bench_suite.suite import Suite, tree_usage

LOSS = "metric.name == 'loss'"
PREDICATE = "run.hparams.lr < 0.0005 and run.experiment == 'exp-3'"


def _m(result: Any, key: str = "s", unit: str = "s") -> Measure | None:
    return measure([float(result.data[key])], unit) if result is not None else None


def _best(results: list[Any], key: str = "s") -> Measure | None:
    got = [float(r.data[key]) for r in results if r is not None]
    return measure(got, "s") if got else None


def _times(s: Suite, workload: str, params: dict[str, Any], tag: str) -> list[Any]:
    return [s.scale(workload, params, f"{tag} {i + 1}/{s.cfg.reps}") for i in range(s.cfg.reps)]


def _per_run(s: Suite, repo: str, runs: int) -> tuple[Measure, Measure]:
    files, size = tree_usage(s.work / repo / ".aim" / "runs")
    return measure([files / runs], "files/run"), measure([size / runs / 1024], "KiB/run")


def many_runs_scale(s: Suite) -> None:
    c = s.cfg
    n, small = c.scale_runs, c.aim_scale_runs
    s.scale("generate", {"repo": s.repo("many"), "runs": n, "points": 5}, f"generate {n:,} runs")
    first = s.scale("repo_again", {"repo": s.repo("many"), "query": PREDICATE}, "first query")
    frame_p = {"repo": s.repo("many"), "query": LOSS}
    frames = _times(s, "frame", frame_p, "frame as written")
    arrow = _times(s, "frame", dict(frame_p, fmt="arrow"), "to_arrow as written")
    last = _times(s, "frame", dict(frame_p, only_last=True), "only_last")
    runs_frame = _times(
        s, "frame", {"repo": s.repo("many"), "query": "", "metrics": ["loss"]}, "runs frame"
    )
    sparse = _times(s, "sparse", frame_p, "sparse_numpy as written")
    compact1 = s.scale("compact", {"repo": s.repo("many")}, "compact")
    files1, kib1 = _per_run(s, "many", n)
    compact2 = s.scale("compact", {"repo": s.repo("many")}, "compact again (nothing to do)")
    files2, kib2 = _per_run(s, "many", n)
    frames_c = _times(s, "frame", frame_p, "frame after compaction")
    sparse_c = _times(s, "sparse", frame_p, "sparse_numpy after compaction")
    pl_set = _times(s, "dataset_scan", {"repo": s.repo("many"), "engine": "polars"}, "polars set")
    dk_set = _times(s, "dataset_scan", {"repo": s.repo("many"), "engine": "duckdb"}, "duckdb set")
    s.drop("many")
    # side by side with Aim: runs both make with Run()
    s.ours("create_runs", {"repo": s.repo("ap-k"), "runs": small, "offset": 0, "points": 5}, "ap k")
    aim_ok = s.aim(
        "create_runs", {"repo": s.repo("aim-k"), "runs": small, "offset": 0, "points": 5}, "aim k"
    )
    if aim_ok is not None:
        s.aim("reindex", {"repo": s.repo("aim-k")}, "aim reindex")
    k_frame, k_aim_frame = s.alternate(
        f"frame over {small:,} runs",
        lambda i: ("frame", {"repo": s.repo("ap-k"), "query": LOSS}),
        (lambda i: ("frame", {"repo": s.repo("aim-k"), "query": LOSS})) if aim_ok else None,
    )
    k_read, k_aim_read = s.alternate(
        f"sparse_numpy over {small:,} runs",
        lambda i: ("read", {"repo": s.repo("ap-k"), "query": LOSS}),
        (lambda i: ("read", {"repo": s.repo("aim-k"), "query": LOSS})) if aim_ok else None,
    )
    s.drop("ap-k", "aim-k")
    big = c.predicate_runs
    s.scale("generate", {"repo": s.repo("pred"), "runs": big, "points": 0}, f"generate {big:,}")
    pred = _times(s, "repo_again", {"repo": s.repo("pred"), "query": PREDICATE}, "predicate")
    s.drop("pred")
    warm = [measure([min(r.data["again_s"])], "s") for r in pred if r is not None]
    s.section(
        f"Many runs: {n:,} runs x 5 points",
        f"{n:,} closed runs of 5 `loss` points each, generated (`tools/bench_suite/scale_repos.py`); "
        f"every figure a fresh process (`scale_side.py`), repo opened inside the timing. Aim is "
        f"measured side by side on {small:,} runs both systems make with `Run()` (Aim's frame and "
        "reads go run by run through RocksDB, so its figure only scales linearly with more runs, "
        "and making and indexing 10,000 Aim runs would take longer than this whole suite).",
        [
            s.add(
                "scale_frame",
                Row(f"`dataframe()` of `loss`, {n:,} runs, as written", _best(frames)),
            ),
            Row("  ... `to_arrow()`", _best(arrow)),
            s.add("scale_frame_c", Row("  ... after compaction", _best(frames_c))),
            Row("`dataframe(only_last=True)`", _best(last)),
            Row("run-level frame `query_runs('').dataframe(metrics=['loss'])`", _best(runs_frame)),
            Row(f"`values.sparse_numpy()` of {n:,} metrics, as written", _best(sparse)),
            Row("  ... after compaction", _best(sparse_c)),
            Row("polars over `.aim/dataset/` (the README's recipe)", _best(pl_set)),
            Row("DuckDB over `.aim/dataset/` (the README's recipe)", _best(dk_set)),
            Row(f"`compact` {n:,} runs", _m(compact1)),
            Row("`compact` again, nothing to do", _m(compact2)),
            Row(
                "files per run after compaction / after compacting again",
                files1,
                note=f"then {files2.median:.1f}",
            ),
            Row(
                "bytes per run after compaction / after compacting again",
                kib1,
                note=f"then {kib2.median:.2f} KiB",
            ),
            Row("first query after writing the runs (index built)", _m(first)),
            Row(
                "`Repo(path)` made again in a warm process, and queried",
                measure([min(first.data["again_s"])], "s") if first is not None else None,
            ),
            Row(f"`dataframe()` of `loss`, {small:,} runs", _best(k_frame), _best(k_aim_frame)),
            Row(f"`sparse_numpy()` of {small:,} metrics", _best(k_read), _best(k_aim_read)),
            Row(f"run predicate over {big:,} runs, fresh process", _best(pred)),
            Row(
                f"run predicate over {big:,} runs, warm",
                measure([w.median for w in warm], "s") if warm else None,
            ),
        ],
    )


def analyst(s: Suite) -> None:
    c = s.cfg
    repo = s.repo("sweep")
    built = s.scale("sweep", {"repo": repo, "runs": c.sweep_runs, "steps": c.sweep_steps}, "sweep")
    floors: dict[str, Any] = {}
    for name, query in (("loss", LOSS), ("all", "")):
        path = str(s.work / f"floor-{name}.parquet")
        s.scale("save_floor", {"repo": repo, "query": query, "path": path}, f"floor {name}")
        for engine in ("pandas", "polars"):
            floors[name, engine] = _times(
                s, "floor", {"path": path, "engine": engine}, f"floor {name} {engine}"
            )
    p = {"repo": repo, "query": LOSS}
    pd_loss = _times(s, "frame", p, "sweep loss dataframe")
    pl_loss = _times(s, "frame", dict(p, fmt="polars"), "sweep loss to_polars")
    last = _times(s, "frame", dict(p, only_last=True), "sweep only_last")
    whole = _times(s, "frame", {"repo": repo, "query": ""}, "sweep whole dataframe")
    whole_pl = _times(
        s, "frame", {"repo": repo, "query": "", "fmt": "polars"}, "sweep whole polars"
    )
    s.scale("compact", {"repo": repo}, "sweep compact")
    after = {
        label: _times(s, "frame", dict(params, repo=repo), f"sweep {label} after compaction")
        for label, params in (
            ("loss pandas", {"query": LOSS}),
            ("loss polars", {"query": LOSS, "fmt": "polars"}),
            ("whole pandas", {"query": ""}),
            ("whole polars", {"query": "", "fmt": "polars"}),
        )
    }
    s.drop("sweep")

    def ratio(ours: list[Any], floor: list[Any]) -> str:
        a, b = _best(ours), _best(floor)
        if a is None or b is None:
            return ""
        rss = max((r.data.get("peak_rss_mib", 0) for r in ours if r is not None), default=0)
        return f"{a.median / b.median:.1f}x the floor, peak RSS {rss:,.0f} MiB"

    rows = built.data["loss_rows"] if built is not None else 0
    s.section(
        f"Analyst: a {c.sweep_runs}-run sweep, {c.sweep_steps:,} steps",
        f"{c.sweep_runs} runs made with `Run()` (`scale_repos.build_sweep`): `loss` and `acc` in "
        "train (every step) and val (every 10th step) contexts, every 10th run resumed over its "
        f"last 10% of steps, every 15th archived; {rows:,} `loss` rows. The floor is the same "
        "frame saved to one Parquet file and read back with pandas or polars. Aim is not run here: "
        f"tracking its {c.sweep_runs * c.sweep_steps * 2.2 * 2:,.0f} points takes Aim minutes "
        "(its per-call cost is in the tracking section), and its frame's per-run cost is in the "
        "many-runs section.",
        [
            s.add(
                "sweep_loss_pd",
                Row(
                    "`loss` `dataframe()`",
                    _best(pd_loss),
                    note=ratio(pd_loss, floors["loss", "pandas"]),
                ),
            ),
            s.add(
                "sweep_loss_pl",
                Row(
                    "`loss` `to_polars()`",
                    _best(pl_loss),
                    note=ratio(pl_loss, floors["loss", "polars"]),
                ),
            ),
            Row("  floor: one Parquet file, pandas", _best(floors["loss", "pandas"])),
            Row("  floor: one Parquet file, polars", _best(floors["loss", "polars"])),
            s.add(
                "sweep_loss_pd_c",
                Row(
                    "`loss` `dataframe()` after compaction",
                    _best(after["loss pandas"]),
                    note=ratio(after["loss pandas"], floors["loss", "pandas"]),
                ),
            ),
            s.add(
                "sweep_loss_pl_c",
                Row(
                    "`loss` `to_polars()` after compaction",
                    _best(after["loss polars"]),
                    note=ratio(after["loss polars"], floors["loss", "polars"]),
                ),
            ),
            Row(
                "`loss` `dataframe(only_last=True)`",
                _best(last),
                note=ratio(last, floors["loss", "pandas"]),
            ),
            s.add(
                "sweep_whole",
                Row(
                    "whole repo `dataframe()`",
                    _best(whole),
                    note=ratio(whole, floors["all", "pandas"]),
                ),
            ),
            Row(
                "whole repo `to_polars()`",
                _best(whole_pl),
                note=ratio(whole_pl, floors["all", "polars"]),
            ),
            Row("  floor: one Parquet file, pandas", _best(floors["all", "pandas"])),
            Row("  floor: one Parquet file, polars", _best(floors["all", "polars"])),
            s.add(
                "sweep_whole_c",
                Row(
                    "whole repo `dataframe()` after compaction",
                    _best(after["whole pandas"]),
                    note=ratio(after["whole pandas"], floors["all", "pandas"]),
                ),
            ),
            Row(
                "whole repo `to_polars()` after compaction",
                _best(after["whole polars"]),
                note=ratio(after["whole polars"], floors["all", "polars"]),
            ),
        ],
    )
