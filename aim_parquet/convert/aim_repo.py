"""`aim-parquet convert aim REPO`: an Aim 3.x repository, read through Aim's own SDK.

Aim is an optional dependency (`pip install 'aim_parquet[aim]'`), imported only here. The source
is only read: each run is opened from its own RocksDB chunk (`.aim/meta/chunks/<hash>`), so runs
that Aim never indexed (a crashed writer, no `aim up` since) are read too and Aim's index is not
rebuilt. What becomes what (`AimRun.read`):
- name, description, experiment, tags, archived, creation and end time -> the same;
- every param (`run[...]`, `__system_params` included) -> the same param;
- every sequence of every kind and context, through `Sequence.data.items_list()`, which gives
  the real steps in step order with each point's epoch and time (not `values.sparse_numpy()`,
  whose keys are step hashes since Aim 3.11): metrics -> metrics, images, texts, distributions,
  audios, figures -> the same objects (encoded bytes kept), terminal logs (`logs`) -> `LogLine`s,
  log records (`__log_records`) -> `LogRecord`s.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

from aim_parquet.convert.engine import FoundRuns, SourceRun
from aim_parquet.convert.sink import CountingSink
from aim_parquet.errors import OptionalDependencyError, SourceError
from aim_parquet.format.paths import MARKER_FILENAME
from aim_parquet.format.run_fields import experiment_or_default
from aim_parquet.objects import Audio, Distribution, Figure, Image, LogLine, LogRecord, Text

INSTALL_HINT = "pip install 'aim_parquet[aim]'"
METRIC_DTYPES = frozenset({"float", "float64", "int", "number"})


def _import_aim() -> Any:
    try:
        with warnings.catch_warnings():  # Aim's imports warn about SQLAlchemy 2 deprecations
            warnings.simplefilter("ignore")
            import aim
            import aim.sdk.run
    except ImportError as exc:
        raise OptionalDependencyError(
            f"converting an Aim repository needs Aim's SDK (Aim 3.x): {INSTALL_HINT} ({exc})"
        ) from exc
    return aim


def find_runs(path: Path) -> FoundRuns:
    """Every run of the Aim repository at `path` (the folder holding `.aim`, or `.aim` itself)."""
    root = Path(os.path.expanduser(path))
    if root.name == ".aim":
        root = root.parent
    aim_dir = root / ".aim"
    if not aim_dir.is_dir():
        raise SourceError(f"no Aim repository at {path}: {aim_dir} does not exist")
    if (aim_dir / MARKER_FILENAME).exists():
        raise SourceError(
            f"{path} is an aim_parquet repository already; copy runs with `aim-parquet runs cp`"
        )
    if not (aim_dir / "meta").is_dir():
        raise SourceError(f"{aim_dir} is not an Aim 3.x repository (no meta/ folder in it)")
    aim = _import_aim()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            repo = aim.Repo(str(root))
        hashes = sorted(repo.list_all_runs())
    except Exception as exc:
        raise SourceError(f"Aim cannot open the repository at {path}: {exc}") from exc
    runs: list[SourceRun] = []
    problems: list[str] = []
    for run_hash in hashes:
        try:
            run = open_run(repo, run_hash)
            experiment = experiment_or_default(run.experiment)
            label = f"{run.name or run_hash} ({run_hash[:8]})"
        except Exception as exc:
            problems.append(f"Aim run {run_hash}: cannot be opened ({exc}); skipped")
            continue
        runs.append(AimRun(repo, run_hash, label, str(experiment)))
    return FoundRuns(runs, problems)


def open_run(repo: Any, run_hash: str) -> Any:
    """A read-only Aim run reading its own meta chunk rather than the repository index (which
    holds only the runs Aim indexed), changing nothing on disk."""
    from aim.sdk.run import Run

    # Aim's read-only open flushes a non-empty write-ahead log into the files first (a write to
    # the source); skip_read_optimization opens as it is. Later requests get these containers.
    # The pool holds containers weakly: the run keeps these two alive.
    meta_tree = repo.request_tree("meta", run_hash, read_only=True, skip_read_optimization=True)
    seqs_tree = repo.request_tree("seqs", run_hash, read_only=True, skip_read_optimization=True)
    run = Run(run_hash, repo=repo, read_only=True)
    run._aim_parquet_trees = (meta_tree, seqs_tree)
    meta = meta_tree.subtree("meta")
    run.meta_tree = meta
    run.meta_run_tree = meta.subtree("chunks").subtree(run_hash)
    run.meta_attrs_tree = meta.subtree("attrs")
    run.meta_run_attrs_tree = run.meta_run_tree.subtree("attrs")
    return run


class AimRun(SourceRun):
    tracker = "aim"

    def __init__(self, repo: Any, run_hash: str, label: str, experiment: str) -> None:
        super().__init__(run_hash, label, experiment)
        self.repo = repo

    def _traces(self, run: Any) -> dict[Any, dict[str, dict[str, Any]]]:
        try:
            traces: dict[Any, dict[str, dict[str, Any]]] = run.meta_run_tree.collect("traces")
        except KeyError:
            return {}
        return traces

    def fingerprint(self) -> str:
        run = open_run(self.repo, self.source_id)
        summary = [
            [str(ctx), name, meta.get("dtype"), meta.get("first_step"), meta.get("last_step")]
            for ctx, seqs in self._traces(run).items()
            for name, meta in seqs.items()
        ]
        text = json.dumps(
            [sorted(summary), run.end_time, run.name, run.description, sorted(run.tags)],
            default=str,
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def read(self, sink: CountingSink) -> None:
        run = open_run(self.repo, self.source_id)
        try:
            params = run[...]
        except KeyError:
            params = {}
        for key, value in sorted(params.items()):
            try:
                sink.set_param(key, value)
            except (TypeError, ValueError) as exc:
                sink.skip(f"param {key!r}: {exc}")
        contexts = run.meta_tree.collect("contexts") if self._traces(run) else {}
        last_time: float | None = None
        for ctx_idx, seqs in self._traces(run).items():
            context = dict(contexts.get(ctx_idx) or {})
            for name, meta in sorted(seqs.items()):
                newest = self._sequence(run, name, context, str(meta.get("dtype")), sink)
                if newest is not None:
                    last_time = newest if last_time is None else max(last_time, newest)
        sink.set_props(
            name=run.name,
            description=run.description,
            experiment=experiment_or_default(run.experiment),
            tags=list(run.tags),
            archived=bool(run.archived),
        )
        end = run.end_time if run.end_time is not None else last_time
        sink.set_times(creation_time=run.creation_time, end_time=end or run.creation_time)

    def _sequence(
        self, run: Any, name: str, context: dict[str, Any], dtype: str, sink: CountingSink
    ) -> float | None:
        """Convert one sequence; the time of its newest point."""
        from aim.sdk.sequence import Sequence
        from aim.storage.context import Context

        seq_cls = next(
            (c for c in Sequence.registry.values() if dtype in _as_tuple(c.allowed_dtypes())),
            None,
        )
        if seq_cls is None:
            sink.skip(f"{name}: sequences of {dtype!r} have no aim_parquet equivalent")
            return None
        seq = seq_cls(name, Context(context), run)
        steps, (values, epochs, times) = seq.data.items_list()
        if not steps:
            return None
        if dtype in METRIC_DTYPES:
            series = sink.series(name, context)
            as_int = dtype == "int"
            for step, value, epoch, ts in zip(steps, values, epochs, times, strict=True):
                number = int(value) if as_int and float(value).is_integer() else float(value)
                series.add(int(step), number, float(ts), _epoch(epoch))
        else:
            for step, value, epoch, ts in zip(steps, values, epochs, times, strict=True):
                try:
                    item = _convert_object(value)
                except (TypeError, ValueError, KeyError) as exc:
                    sink.skip(f"{name}: an object that cannot be converted ({exc})")
                    continue
                sink.track_object(
                    item, name, int(step), timestamp=float(ts), epoch=_epoch(epoch), context=context
                )
        return max(float(t) for t in times)


def _as_tuple(dtypes: Any) -> tuple[str, ...]:
    return (dtypes,) if isinstance(dtypes, str) else tuple(dtypes)


def _epoch(value: Any) -> int | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else int(number)


def _convert_object(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_convert_object(v) for v in value]
    typename = type(value).get_typename()
    storage = value.storage
    if typename == "aim.image":
        meta = {
            "caption": storage.get("caption", "") or "",
            "format": str(storage["format"]).lower(),
            "width": int(storage["width"]),
            "height": int(storage["height"]),
            "mode": str(storage.get("mode", "")),
        }
        return Image.from_record(bytes(storage["data"]), meta)
    if typename == "aim.distribution":
        start, end = value.range
        return Distribution(hist=value.weights, bin_range=(start, end))
    if typename in ("aim.text", "aim.log_line"):
        cls = LogLine if typename == "aim.log_line" else Text
        return cls(str(value.data))
    if typename == "aim.audio":
        return Audio(
            bytes(storage["data"]),
            format=str(storage.get("format") or ""),
            caption=str(storage.get("caption", "") or ""),
        )
    if typename == "aim.figure":
        return Figure.from_record(
            str(value.data).encode("utf-8"), {"version": storage.get("version", "")}
        )
    if typename == "aim.log_record":
        info = storage.get("__logger_info")
        return LogRecord(
            str(storage["message"]),
            int(storage["log_level"]),
            float(storage["timestamp"]),
            extra_args=storage.get("extra_args") or {},
            logger_info=list(info) if info is not None else None,
        )
    raise TypeError(f"Aim object type {typename!r} has no aim_parquet equivalent")
