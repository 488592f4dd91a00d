"""Benchmark the converters against each source tracker's own reader.

    .venv/bin/python tools/bench_convert.py [--aim-python .venv-convert-aim/bin/python]
                                            [--tb-events 1000000] [--repeat 3]

(`make bench-convert` installs what it needs and runs this.) Sources are written once by the real
tools into .bench/convert/ and reused:

  * TensorBoard: `--tb-events` scalar events (4 tags) written by tensorboardX into one run;
  * MLflow: 20 runs x 5 metrics x 2,000 steps (200,000 points), with params and tags, written
    by the real client into a file store and into a SQLite database;
  * Aim: 10 runs x 5 metrics x 2,000 steps (100,000 points) written by Aim itself.

For each source it prints the median wall time of `aim-parquet convert` (a fresh process into a
fresh repository, everything included: start-up, reading, checking CRCs, writing, closing) and
of the tracker's own reader reading the same data in a fresh process: TensorBoard's
EventAccumulator keeping every scalar, MlflowClient's search_runs + get_metric_history of every
metric, Aim's SDK reading every metric (`Metric.data.numpy()`). Needs tensorboardX, tensorboard
and mlflow in this Python (requirements-converters.txt) and Aim in `--aim-python`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".bench" / "convert"
TIMEOUT_S = 1800

WRITE_TB = """
import sys
from tensorboardX import SummaryWriter
n = int(sys.argv[2]) // 4
w = SummaryWriter(sys.argv[1], max_queue=100000, flush_secs=600)
for step in range(n):
    for tag in ("loss", "acc", "lr", "grad_norm"):
        w.add_scalar(tag, step * 0.001, step, walltime=1.7e9 + step)
w.close()
"""
READ_TB = """
import sys
from tensorboard.backend.event_processing import event_accumulator as ea
acc = ea.EventAccumulator(sys.argv[1], size_guidance={ea.SCALARS: 0})
acc.Reload()
print(sum(len(acc.Scalars(t)) for t in acc.Tags()["scalars"]))
"""
WRITE_MLFLOW = """
import sys, time
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
client = MlflowClient(sys.argv[1])
exp = client.create_experiment("bench")
for r in range(20):
    run = client.create_run(exp, run_name=f"run{r}")
    client.log_batch(run.info.run_id, params=[Param(f"p{i}", str(i * r)) for i in range(10)],
                     tags=[RunTag("team", "bench")])
    now = int(time.time() * 1000)
    for key in ("loss", "acc", "lr", "grad_norm", "val_loss"):
        points = [Metric(key, s * 0.001, now + s, s) for s in range(2000)]
        for i in range(0, len(points), 1000):
            client.log_batch(run.info.run_id, metrics=points[i:i + 1000])
    client.set_terminated(run.info.run_id)
"""
READ_MLFLOW = """
import sys
from mlflow import MlflowClient
client = MlflowClient(sys.argv[1])
points = 0
for exp in client.search_experiments():
    for run in client.search_runs([exp.experiment_id], max_results=50000):
        for key in run.data.metrics:
            points += len(client.get_metric_history(run.info.run_id, key))
print(points)
"""
WRITE_AIM = """
import sys, aim
for r in range(10):
    run = aim.Run(repo=sys.argv[1], experiment="bench", system_tracking_interval=None,
                  capture_terminal_logs=False)
    run["hparams"] = {"lr": 0.001 * r, "seed": r}
    for step in range(2000):
        for key in ("loss", "acc", "lr", "grad_norm", "val_loss"):
            run.track(step * 0.001, name=key, step=step, epoch=step // 100)
    run.close()
aim.Repo(sys.argv[1])._recreate_index()  # `aim reindex`: what `aim up` does, so Aim's reader sees them
"""
READ_AIM = """
import sys, warnings
warnings.simplefilter("ignore")
import aim
repo = aim.Repo(sys.argv[1])
points = 0
for run in repo.iter_runs():
    for metric in run.metrics():
        steps, _ = metric.data.numpy()
        points += len(steps)
assert points == 100_000, points
print(points)
"""


def log(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def run(cmd: list[str], **env: str) -> float:
    """Wall seconds of a command that must succeed."""
    started = time.perf_counter()
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=TIMEOUT_S, env={**os.environ, **env}
    )
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(
            f"{' '.join(cmd[:4])} ... failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )
    return seconds


def script(python: str, code: str, *args: str, **env: str) -> float:
    return run([python, "-c", code, *args], **env)


def median_of(repeat: int, measure: object) -> float:
    assert callable(measure)
    return statistics.median(measure() for _ in range(repeat))


def convert_seconds(python: str, kind: str, source: str) -> float:
    dest = Path(tempfile.mkdtemp(prefix="bench-convert-", dir=WORK))
    try:
        return run([python, "-m", "aim_parquet", "convert", kind, source, "--repo", str(dest)])
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def prepare(args: argparse.Namespace) -> dict[str, Path]:
    WORK.mkdir(parents=True, exist_ok=True)
    tb = WORK / f"tb-{args.tb_events}"
    if not tb.exists():
        log(f"writing {args.tb_events:,} scalar events with tensorboardX ...")
        script(sys.executable, WRITE_TB, str(tb / "run.tmp"), str(args.tb_events))
        (tb / "run.tmp").rename(tb / "run")
    mlruns = WORK / "mlruns"
    db = WORK / "mlflow.db"
    if not mlruns.exists():
        log("writing the MLflow file store ...")
        script(
            sys.executable,
            WRITE_MLFLOW,
            (WORK / "mlruns.tmp").as_uri(),
            MLFLOW_ALLOW_FILE_STORE="true",
        )
        (WORK / "mlruns.tmp").rename(mlruns)
    if not db.exists():
        log("writing the MLflow SQLite database ...")
        script(sys.executable, WRITE_MLFLOW, f"sqlite:///{WORK / 'mlflow.tmp.db'}")
        (WORK / "mlflow.tmp.db").rename(db)
    aim_repo = WORK / "aim"
    if args.aim_python and not aim_repo.exists():
        log("writing the Aim repository with Aim ...")
        script(args.aim_python, WRITE_AIM, str(WORK / "aim.tmp"))
        (WORK / "aim.tmp").rename(aim_repo)
    return {"tb": tb, "mlruns": mlruns, "db": db, "aim": aim_repo}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--aim-python", default=None, help="a Python with Aim installed")
    parser.add_argument("--tb-events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--write", action="store_true", help="also write the table into BENCHMARKS.md (Converters)"
    )
    args = parser.parse_args()
    src = prepare(args)
    py = sys.executable
    load_before = os.getloadavg()[0]
    rows = []
    log("TensorBoard ...")
    rows.append(
        (
            f"TensorBoard, {args.tb_events:,} scalar events",
            median_of(args.repeat, lambda: convert_seconds(py, "tensorboard", str(src["tb"]))),
            median_of(args.repeat, lambda: script(py, READ_TB, str(src["tb"] / "run"))),
            "EventAccumulator (all scalars kept)",
        )
    )
    for label, key, uri in (
        ("MLflow file store", "mlruns", src["mlruns"].as_uri()),
        ("MLflow SQLite", "db", f"sqlite:///{src['db']}"),
    ):
        log(f"{label} ...")
        rows.append(
            (
                f"{label}, 20 runs, 200,000 points",
                median_of(
                    args.repeat, lambda key=key: convert_seconds(py, "mlflow", str(src[key]))
                ),
                median_of(
                    args.repeat,
                    lambda uri=uri: script(py, READ_MLFLOW, uri, MLFLOW_ALLOW_FILE_STORE="true"),
                ),
                "MlflowClient: search_runs + get_metric_history",
            )
        )
    if args.aim_python:
        log("Aim ...")
        aim_py = args.aim_python
        rows.append(
            (
                "Aim 3.29 repository, 10 runs, 100,000 points",
                median_of(args.repeat, lambda: convert_seconds(aim_py, "aim", str(src["aim"]))),
                median_of(args.repeat, lambda: script(aim_py, READ_AIM, str(src["aim"]))),
                "Aim SDK: Metric.data.numpy() of every metric",
            )
        )
    table = [
        "| source | `aim-parquet convert` | the tracker's own reader | reader |",
        "|---|---|---|---|",
        *(f"| {w} | {ours:.2f} s | {theirs:.2f} s | {r} |" for w, ours, theirs, r in rows),
    ]
    print("\n".join(table))
    loads = (load_before, os.getloadavg()[0])
    print(f"1-minute load average: {loads[0]:.2f} before, {loads[1]:.2f} after")
    if args.write:
        write_section(table, args.repeat, loads)


def write_section(table: list[str], repeat: int, loads: tuple[float, float]) -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    from bench_suite.env import machine_info
    from bench_suite.report import replace_marked_section

    machine = machine_info(Path(sys.executable))
    body = "\n".join(
        [
            "## Converters",
            "",
            f"`make bench-convert` (`.venv/bin/python tools/bench_convert.py --write`), "
            f"{time.strftime('%Y-%m-%d')}, {machine['CPU']}, Python {machine['Python']}: the "
            f"median of {repeat} fresh processes each. `aim-parquet convert` is the whole command "
            "into a new repository (start-up, reading, CRC checks, writing, closing); the "
            "tracker's own reader reads the same data in a fresh process (import included). "
            f"1-minute load average {loads[0]:.1f} before and {loads[1]:.1f} after (the machine "
            "is shared: compare within a row, not across runs of the tool).",
            "",
            *table,
            "",
            "TensorBoard's target (issue 18): 1M scalar events in <= 10 s.",
        ]
    )
    path = ROOT / "BENCHMARKS.md"
    path.write_text(replace_marked_section(path.read_text(encoding="utf-8"), "bench-convert", body))
    log(f"wrote the Converters section of {path}")


if __name__ == "__main__":
    main()
