"""Migration scripts run unchanged against Aim and aim_parquet:
`python compat_script.py MODULE REPO track`, then `... MODULE REPO read`.

MODULE is `aim` or `aim_parquet`. The script tracks three runs with the library's own SDK, then
reads them back the ways issue #20 found scripts doing, and prints one JSON object: check name ->
result (plain JSON values, floats rounded). `test_compat.py` compares it with `expected.json`
(recorded from Aim 3.29.1) and, where Aim is installed, with Aim's own output.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
import warnings
from collections.abc import Callable
from typing import Any

warnings.simplefilter("ignore")
MODULE, REPO = sys.argv[1], sys.argv[2]
aim = importlib.import_module(MODULE)
sdk = importlib.import_module(f"{MODULE}.sdk")
sdk_types = importlib.import_module(f"{MODULE}.sdk.types")
sdk_objects = importlib.import_module(f"{MODULE}.sdk.objects")
Context = importlib.import_module(
    "aim.storage.context" if MODULE == "aim" else f"{MODULE}.sdk.context"
).Context
import numpy as np  # noqa: E402

RUNS = {
    "alpha": ({"lr": 0.1, "opt": "adam"}, ["a"]),
    "beta": ({"lr": 0.01, "bs": 32}, ["b"]),
    "gamma": ({"opt": "sgd"}, ["a", "c"]),
}


def track_runs() -> dict[str, str]:
    hashes = {}
    for name, (params, tags) in RUNS.items():
        run = aim.Run(
            repo=REPO, experiment="exp", system_tracking_interval=None, capture_terminal_logs=False
        )
        run.name = name
        for key, value in params.items():
            run[key] = value
        for tag in tags:
            run.add_tag(tag)
        for step in range(6):
            run.track(
                1.0 / (step + 1),
                name="loss",
                step=step,
                epoch=step // 2,
                context={"subset": "train"},
            )
            if step % 2 == 0:
                run.track(float(step), name="loss", step=step, context={"subset": "val"})
            run.track(step * 10, name="count", step=step)
        run.track(float("nan"), name="nan_metric", step=0)
        pixels = np.zeros((4, 4, 3), dtype=np.uint8)
        run.track(sdk_objects.Image(pixels, caption="one"), name="img", step=0)
        run.track([aim.Image(pixels, caption=f"l{i}") for i in range(3)], name="imgs", step=0)
        run.track([aim.Image(pixels, caption="m")], name="imgs", step=1)
        hashes[name] = run.hash
        run.close()
        run.track(1.0, name="after_close")  # item 8: ignored, never raises
    return hashes


def rounded(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 6)
    if isinstance(value, (list, tuple)):
        return [rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return rounded(value.item())
    return value


def get_run(repo: Any, run_hash: str) -> Any:
    """The run by hash, found through a query (Aim 3.29's `get_run` misses runs it has not
    indexed yet)."""
    return next(r.run for r in repo.query_runs(f"run.hash == '{run_hash}'").iter_runs())


def checks(repo: Any, hashes: dict[str, str]) -> dict[str, Callable[[], Any]]:
    alpha = hashes["alpha"]

    def loss(run: Any) -> Any:
        return run.get_metric("loss", Context({"subset": "train"}))

    def df_param_dtypes() -> Any:  # item 1
        df = repo.query_metrics("metric.name == 'loss' and metric.context.subset == 'train'")
        df = df.dataframe()
        return {c: str(df[c].dtype) for c in ("run.lr", "run.bs", "value", "epoch")}

    def df_describe() -> Any:  # item 1: describe() keeps a param column some runs lack
        df = repo.query_metrics("metric.name == 'count'").dataframe()
        return sorted(c for c in df.describe().columns if c.startswith("run."))

    def run_equality() -> Any:  # item 2
        a, b = get_run(repo, alpha), get_run(repo, alpha)
        return [
            a == b,
            hash(a) == hash(b),
            len({a, b}),
            loss(a) == loss(b),
            len({loss(a), loss(b)}),
        ]

    def seq_info_by_type() -> Any:  # item 3
        run = get_run(repo, alpha)
        return {
            t: sorted(n for n, _c, _r in run.iter_sequence_info_by_type(t))
            for t in ("float", "int", "aim.image")
        }

    def query_metric_run() -> Any:  # item 4
        found = repo.query_metrics("metric.run.name == 'alpha' and metric.name == 'count'")
        return sorted(m.run.name for m in found)

    def writable_arrays() -> Any:  # item 5
        metric = loss(get_run(repo, alpha))
        steps, vals = metric.values.sparse_numpy()
        vals /= vals.max()
        vals[vals < 0.3] = 0.0
        epochs = metric.epochs.values_numpy()
        epochs.sort()
        _s, (dvals, _e, _t) = metric.data.numpy()
        dvals.sort()
        return [vals.tolist(), dvals.tolist()]

    def df_columns() -> Any:  # item 6: Aim's columns first, in Aim's order
        metric = loss(get_run(repo, alpha))
        df = metric.dataframe(include_name=True, include_context=True, include_run=True)
        aim_cols = [
            "idx",
            "step",
            "value",
            "epoch",
            "time",
            "run.hash",
            "run.lr",
            "run.opt",
            "metric.name",
            "metric.context.subset",
        ]
        return [
            list(df.columns)[: len(aim_cols)] == aim_cols,
            str(df["epoch"].dtype),
            str(df["value"].dtype),
            df["time"].iloc[0].timestamp() == pytest_time(metric),
        ]

    def pytest_time(metric: Any) -> bool:
        import datetime

        first = metric.timestamps.values_list()[0]
        return datetime.datetime.fromtimestamp(first).timestamp()

    def val_epochs_items_list() -> Any:  # item 6: NaN for a missing epoch
        val = get_run(repo, alpha).get_metric("loss", Context({"subset": "val"}))
        _steps, (_v, epochs, _t) = val.data.items_list()
        return [e != e for e in epochs]

    def comprehension_query() -> Any:  # item 9
        found = repo.query_runs("any(t == 'a' for t in run.tags)").iter_runs()
        return sorted(r.run.name for r in found)

    def isinstance_query() -> Any:  # item 9
        found = repo.query_runs("isinstance(run.lr, float)")
        return sorted(r.run.name for r in found.iter_runs())

    def utcnow_query() -> Any:  # item 9
        found = repo.query_runs("run.created_at < datetime.utcnow()")
        return sorted(r.run.name for r in found.iter_runs())

    def metric_run_query() -> Any:  # item 4, in Aim's words
        found = repo.query_metrics("metric.name == 'count' and run.name == 'alpha'")
        return sorted(m.run.name for m in found)

    def data_api() -> Any:  # item 10
        metric = loss(get_run(repo, alpha))
        first = next(iter(metric.data))
        return [
            len(metric),
            metric.data.indices_list(),
            rounded(metric.data.view("val").values_list()),
            metric.data.sample(3).indices_list(),
            [first[0], rounded(first[1][0]), rounded(first[1][1])],
            [s for s, _ in metric.data.items()],
        ]

    def record_length() -> Any:  # item 10
        run = get_run(repo, alpha)
        return [
            run.get_image_sequence("imgs").record_length(),
            run.get_image_sequence("img").record_length(),
        ]

    def imports() -> Any:  # item 11
        mode = sdk_types.QueryReportMode.DISABLED
        runs = list(sdk.Repo(REPO).query_runs("", report_mode=mode).iter_runs())
        return [sdk.Run.__name__, sdk.Repo.__name__, len(runs), sdk_objects.Image.__name__]

    def edits() -> Any:  # item 7
        run = get_run(repo, hashes["gamma"])
        run.name = "gamma2"
        run.description = "edited"
        run.add_tag("z")
        run.archived = True
        again = get_run(repo, hashes["gamma"])
        out = [again.name, again.description, sorted(again.tags), again.archived]
        again.archived = False
        return out + [type(run.repo).__name__]

    return {
        name: fn
        for name, fn in locals().items()
        if callable(fn) and name != "pytest_time" and name != "loss"
    }


def main() -> None:
    if sys.argv[3] == "track":  # a process of its own: Aim shows a run's series to later ones
        with open(f"{REPO}/hashes.json", "w") as out:
            json.dump(track_runs(), out)
        return
    with open(f"{REPO}/hashes.json") as src:
        hashes = json.load(src)
    repo = aim.Repo(REPO)
    if MODULE == "aim":  # what `aim reindex` (or the running Aim UI) does before Aim reads runs
        repo._recreate_index()
    out = {}
    for name, fn in checks(repo, hashes).items():  # in definition order: edits() comes last
        try:
            out[name] = rounded(fn())
        except Exception as exc:  # a difference, recorded as such
            out[name] = f"error: {type(exc).__name__}"
    print(json.dumps(out, sort_keys=True))


main()
