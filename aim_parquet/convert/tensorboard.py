"""`aim-parquet convert tensorboard LOGDIR`: TensorBoard event files, read without TensorFlow.

Runs are found like TensorBoard's run list: every folder under LOGDIR holding event files
(`*tfevents*`) is a run, except a folder named like a data subset (`train`, `validation`, ...),
whose events join its parent folder's run with the context `{"subset": <folder name>}`.

What becomes what (`TensorBoardRun.read`):
- scalars (TF1 `simple_value` and TF2 / torch tensor scalars) -> metrics, tag -> name;
- histograms (`HistogramProto` and TF2 `[k, 3]` tensors) -> `Distribution` (see `histograms`);
- images (encoded PNG/JPEG/GIF, TF1 `Image` or TF2 string tensors) -> `Image`, bytes kept;
- audio (TF1 `Audio` or TF2 tensors) -> `Audio`, bytes kept; text (string tensors) -> `Text`;
- hparams (`_hparams_/session_start_info`) -> `run["hparams"]`, session status and group ->
  `run["tensorboard"]`;
- every point keeps its event's wall time; the run's creation and end time are the first and last.
Model graphs, run metadata and plugins without an equivalent (PR curves, meshes, ...) are reported
as skipped, as are corrupt and truncated records (see `tfrecord`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from aim_parquet.convert.engine import SourceRun
from aim_parquet.convert.protowire import WireError
from aim_parquet.convert.sink import CountingSink, Series
from aim_parquet.convert.tb_objects import ObjectMaker
from aim_parquet.convert.tb_proto import decode_event, decode_scalar_event
from aim_parquet.convert.tfrecord import RecordReader
from aim_parquet.errors import SourceError

EVENT_FILE_MARK = "tfevents"
SUBSET_NAMES = frozenset(
    {"train", "training", "val", "valid", "validation", "eval", "evaluation", "test", "dev"}
)
# Event fields that carry no data to convert.
_IGNORED_FIELDS = frozenset({"file_version", "session_log", "source_metadata"})


class TensorBoardRun(SourceRun):
    tracker = "tensorboard"

    def __init__(
        self, run_dir: Path, label: str, experiment: str, files: list[tuple[Path, str | None]]
    ) -> None:
        super().__init__(str(run_dir), label, experiment)
        self.run_dir = run_dir
        self.files = files  # (event file, subset or None), in reading order

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for path, _ in self.files:
            digest.update(f"{path.relative_to(self.run_dir)}\0{path.stat().st_size}\0".encode())
        return digest.hexdigest()[:16]

    def read(self, sink: CountingSink) -> None:
        reader = _RunReader(sink)
        for path, subset in self.files:
            reader.read_file(path, subset)
        reader.finish(self)


class _RunReader:
    """The state of reading one run's event files into a sink."""

    def __init__(self, sink: CountingSink) -> None:
        self.sink = sink
        self.series: dict[tuple[str, str | None], Series] = {}
        self.plugins: dict[tuple[str, str | None], str] = {}  # TF2 writes metadata once per tag
        self.first_time: float | None = None
        self.last_time: float | None = None
        self.objects = ObjectMaker(sink)
        self.tensorboard: dict[str, Any] = {}

    def read_file(self, path: Path, subset: str | None) -> None:
        sink = self.sink
        context = {"subset": subset} if subset else {}
        series_cache = self.series
        by_tag_bytes: dict[bytes, Series] = {}
        reader = RecordReader(path)
        lowest = highest = None
        for data in reader:
            fast = decode_scalar_event(data)
            if fast is not None:
                wall_time, step, tag_bytes, value = fast
                if lowest is None or highest is None:
                    lowest = highest = wall_time
                elif wall_time < lowest:
                    lowest = wall_time
                elif wall_time > highest:
                    highest = wall_time
                series = by_tag_bytes.get(tag_bytes)
                if series is None:
                    tag = tag_bytes.decode("utf-8", "replace")
                    series = series_cache.get((tag, subset))
                    if series is None:
                        series = series_cache[(tag, subset)] = sink.series(tag, context)
                    by_tag_bytes[tag_bytes] = series
                series.add(step, value, wall_time)
                continue
            try:
                wall_time, step, values, others = decode_event(data)
            except WireError as exc:
                sink.skip(f"{path.name}: a record that is not a TensorBoard event ({exc})")
                continue
            if lowest is None or highest is None:
                lowest = highest = wall_time
            elif wall_time < lowest:
                lowest = wall_time
            elif wall_time > highest:
                highest = wall_time
            if others:
                self._other_fields(others)
            if not values:
                continue
            for tag, kind, payload, plugin, content in values:
                if kind == "simple":
                    series = series_cache.get((tag, subset))
                    if series is None:
                        series = series_cache[(tag, subset)] = sink.series(tag, context)
                    series.add(step, payload, wall_time)
                    continue
                key = (tag, subset)
                if plugin is None:
                    plugin = self.plugins.get(key, "")
                else:
                    self.plugins[key] = plugin
                try:
                    self._value(data, tag, kind, payload, plugin, content, step, wall_time, context)
                except (WireError, ValueError, TypeError, OSError) as exc:  # OSError: PIL's
                    sink.skip(f"{tag}: {plugin or kind} value that cannot be decoded ({exc})")
        for problem in reader.problems:
            sink.skip(str(problem))
        if lowest is not None and highest is not None:
            self.first_time = lowest if self.first_time is None else min(self.first_time, lowest)
            self.last_time = highest if self.last_time is None else max(self.last_time, highest)

    def _value(
        self,
        data: bytes,
        tag: str,
        kind: str,
        payload: Any,
        plugin: str,
        content: bytes | None,
        step: int,
        wall_time: float,
        context: dict[str, Any],
    ) -> None:
        if plugin == "hparams":
            self.objects.hparams(tag, content, self.tensorboard)
            return
        if kind == "tensor":
            value = self.objects.from_tensor(data, payload, tag, plugin)
            if value is None:
                return
            if isinstance(value, float | int):
                key = (tag, context.get("subset"))
                series = self.series.get(key)
                if series is None:
                    series = self.series[key] = self.sink.series(tag, context)
                series.add(step, value, wall_time)
                return
        elif kind in ("histo", "image", "audio"):
            value = self.objects.from_message(data, payload, kind)
        else:
            what = "an old-style histogram" if kind == "old_histo" else "an empty summary value"
            self.sink.skip(f"{tag}: {what} (not converted)")
            return
        self.sink.track_object(value, tag, step, timestamp=wall_time, context=context)

    def _other_fields(self, others: list[str]) -> None:
        for name in others:
            if name not in _IGNORED_FIELDS:
                self.sink.skip(f"event {name} (model graphs and run metadata are not converted)")

    def finish(self, run: TensorBoardRun) -> None:
        sink = self.sink
        sink.set_props(name=run.label, experiment=run.experiment)
        if self.objects.hparams_values:
            sink.set_param("hparams", self.objects.hparams_values)
        sink.set_param("tensorboard", {"logdir": str(run.run_dir), **self.tensorboard})
        sink.set_times(creation_time=self.first_time, end_time=self.last_time)


def find_runs(logdir: Path, experiment: str | None = None) -> list[TensorBoardRun]:
    """The runs under `logdir` (SourceError when it is missing or holds no event file)."""
    root = Path(os.path.expanduser(logdir))
    if not root.exists():
        raise SourceError(
            f"TensorBoard log folder {logdir} does not exist; pass the --logdir you gave TensorBoard"
        )
    if not root.is_dir():
        raise SourceError(f"{logdir} is not a folder; pass the folder holding the event files")
    root = root.resolve()
    groups: dict[Path, list[tuple[Path, str | None]]] = {}
    try:
        walked = list(os.walk(root, onerror=_raise))
    except OSError as exc:
        raise SourceError(f"cannot read TensorBoard log folder {logdir}: {exc}") from exc
    for folder, dirs, files in walked:
        dirs.sort()
        events = sorted(f for f in files if EVENT_FILE_MARK in f)
        if not events:
            continue
        here = Path(folder)
        if here != root and here.name.lower() in SUBSET_NAMES:
            run_dir, subset = here.parent, here.name
        else:
            run_dir, subset = here, None
        groups.setdefault(run_dir, []).extend((here / event, subset) for event in events)
    if not groups:
        raise SourceError(f"no TensorBoard event files (events.out.tfevents.*) under {logdir}")
    experiment_name = experiment or root.name or "default"
    runs = []
    for run_dir in sorted(groups):
        rel = run_dir.relative_to(root)
        label = root.name if rel == Path(".") else rel.as_posix()
        run_files = sorted(groups[run_dir], key=lambda item: (item[1] or "", item[0].name))
        runs.append(TensorBoardRun(run_dir, label, experiment_name, run_files))
    return runs


def _raise(exc: OSError) -> None:
    raise exc
