"""Reading one TensorBoard run's event files into a sink, in two passes, losing no event.

Pass 1 reads every record of every file in order: scalars go to one compact buffer per series,
hparams are collected, and every other value (histogram, image, audio, text) is only noted: where
it is (file, record offset, index in its summary), its step and time, and what it becomes
(`Outline`). Then each sequence is planned:

- A step holds one value here, but TensorBoard keeps every event: a sequence whose steps repeat
  (`add_scalar` without `global_step`, a restart that logs the same steps again) or are negative
  keeps all its points, numbered 0, 1, ... in TensorBoard's order (the order its
  EventAccumulator returns), with the TensorBoard step kept as the epoch. Such sequences are
  listed in `run["tensorboard"]["renumbered"]` as `{"name", "context"}`.
- A tag that holds values of different kinds (a scalar and a histogram, say) gives one sequence
  per kind: scalars keep the tag's context, other kinds add `"kind": "distribution"` (or
  `"image"`, `"audio"`, `"text"`) to it when the tag's own context is taken.
- A TF2 image, audio or text-vector sequence whose steps hold batches of different sizes holds
  lists (a batch of one is a list of one); otherwise single objects, as TF1 messages give.
- An empty tag becomes the name `EMPTY_TAG_NAME` (names here are not empty).

Pass 2 reads the noted records again (checking their CRCs), decodes them and writes them.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aim_parquet.convert.protowire import WireError
from aim_parquet.convert.sink import CHUNK_POINTS, CountingSink, needs_renumbering
from aim_parquet.convert.tb_objects import ObjectMaker, Outline
from aim_parquet.convert.tb_proto import decode_event, decode_scalar_event
from aim_parquet.convert.tfrecord import RecordReader

EMPTY_TAG_NAME = "(empty tag)"
METRIC = "metric"
KIND_KEY = "kind"
# Event fields that carry no data to convert.
_IGNORED_FIELDS = frozenset({"file_version", "session_log", "source_metadata"})

SeriesKey = tuple[str, str | None]  # (tag, subset)


class _Scalars:
    """The points of one scalar series: int64 steps, float64 (or int64) values, times."""

    __slots__ = ("steps", "values", "times")

    def __init__(self, first: int | float) -> None:
        self.steps = array("q")
        self.values: array[Any] = array("q" if type(first) is int else "d")
        self.times = array("d")

    def add(self, step: int, value: int | float, wall_time: float) -> None:
        self.steps.append(step)
        self.times.append(wall_time)
        try:
            self.values.append(value)
        except (TypeError, OverflowError):  # a float (or a huge int) in an int series
            self.values = array("d", self.values)
            self.values.append(value)


@dataclass
class _Objects:
    """The noted values of one object sequence (tag, subset, kind)."""

    steps: list[int] = field(default_factory=list)
    is_list: bool = False
    renumber: bool = False
    context: dict[str, Any] = field(default_factory=dict)
    written: int = 0


# (sequence key, file index, record offset, value index, step, wall time, outline)
_Noted = tuple[tuple[str, str | None, str], int, int, int, int, float, Outline]


class RunReader:
    """The state of reading one run's event files into a sink."""

    def __init__(self, sink: CountingSink) -> None:
        self.sink = sink
        self.scalars: dict[SeriesKey, _Scalars] = {}
        self.objects: dict[tuple[str, str | None, str], _Objects] = {}
        self.noted: list[_Noted] = []
        self.plugins: dict[SeriesKey, str] = {}  # TF2 writes metadata once per tag
        self.files: list[Path] = []
        self.first_time: float | None = None
        self.last_time: float | None = None
        self.maker = ObjectMaker(sink)
        self.tensorboard: dict[str, Any] = {}
        self.renumbered: list[dict[str, Any]] = []

    # -- pass 1 ----------------------------------------------------------------------------
    def read_file(self, path: Path, subset: str | None) -> None:
        sink = self.sink
        scalars = self.scalars
        by_tag_bytes: dict[bytes, _Scalars] = {}
        file_index = len(self.files)
        self.files.append(path)
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
                buffer = by_tag_bytes.get(tag_bytes)
                if buffer is None:
                    key = (tag_bytes.decode("utf-8", "replace"), subset)
                    buffer = scalars.get(key)
                    if buffer is None:
                        buffer = scalars[key] = _Scalars(value)
                    by_tag_bytes[tag_bytes] = buffer
                buffer.add(step, value, wall_time)
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
            for name in others:
                if name not in _IGNORED_FIELDS:
                    sink.skip(f"event {name} (model graphs and run metadata are not converted)")
            for index, (tag, kind, payload, plugin, content) in enumerate(values or ()):
                if kind == "simple":
                    self._scalar((tag, subset), step, payload, wall_time)
                    continue
                key = (tag, subset)
                if plugin is None:
                    plugin = self.plugins.get(key, "")
                else:
                    self.plugins[key] = plugin
                if plugin == "hparams":
                    self.maker.hparams(tag, content, self.tensorboard)
                    continue
                where = (file_index, reader.offset, index, step, wall_time)
                try:
                    self._note(data, key, kind, payload, plugin, where)
                except (WireError, ValueError, TypeError) as exc:
                    sink.skip(f"{tag}: {plugin or kind} value that cannot be decoded ({exc})")
        for problem in reader.problems:
            sink.skip(str(problem))
        if lowest is not None and highest is not None:
            self.first_time = lowest if self.first_time is None else min(self.first_time, lowest)
            self.last_time = highest if self.last_time is None else max(self.last_time, highest)

    def _scalar(self, key: SeriesKey, step: int, value: int | float, wall_time: float) -> None:
        buffer = self.scalars.get(key)
        if buffer is None:
            buffer = self.scalars[key] = _Scalars(value)
        buffer.add(step, value, wall_time)

    def _note(
        self,
        data: bytes,
        key: SeriesKey,
        kind: str,
        payload: Any,
        plugin: str,
        where: tuple[int, int, int, int, float],
    ) -> None:
        tag = key[0]
        file_index, offset, index, step, wall_time = where
        if kind == "tensor" and plugin in ("scalars", ""):
            found = self.maker.scalar(data, payload, tag, plugin)
            if found is None:
                return
            if not isinstance(found, Outline):
                self._scalar(key, step, found, wall_time)
                return
            outline = found
        elif kind in ("tensor", "histo", "image", "audio"):
            noted = self.maker.outline(data, payload, kind, plugin)
            if noted is None:
                self.sink.skip(
                    f"{tag}: plugin {plugin!r} has no aim_parquet equivalent (not converted)"
                )
                return
            outline = noted
        else:
            what = "an old-style histogram" if kind == "old_histo" else "an empty summary value"
            self.sink.skip(f"{tag}: {what} (not converted)")
            return
        seq_key = (tag, key[1], outline.kind)
        seq = self.objects.get(seq_key)
        if seq is None:
            seq = self.objects[seq_key] = _Objects()
        seq.steps.append(step)
        if outline.items != 1:
            seq.is_list = True
        self.noted.append((seq_key, file_index, offset, index, step, wall_time, outline))

    # -- planning and pass 2 ---------------------------------------------------------------
    def finish(self, name: str, experiment: str, logdir: Path) -> None:
        sink = self.sink
        taken: dict[SeriesKey, str] = {}
        for (tag, subset), buffer in self.scalars.items():
            taken[(tag, subset)] = METRIC
            self._write_scalars(tag, _context(subset), buffer)
        for (tag, subset, kind), seq in self.objects.items():
            context = _context(subset)
            owner = taken.setdefault((tag, subset), kind)
            if owner != kind:
                context[KIND_KEY] = kind
            seq.context = context
            seq.renumber = needs_renumbering(seq.steps)
            if seq.renumber:
                self.renumbered.append({"name": _name(tag), "context": context})
            seq.steps = []
        self._write_objects()
        sink.set_props(name=name, experiment=experiment)
        if self.maker.hparams_values:
            sink.set_param("hparams", self.maker.hparams_values)
        info: dict[str, Any] = {"logdir": str(logdir), **self.tensorboard}
        if self.renumbered:
            info["renumbered"] = self.renumbered
        sink.set_param("tensorboard", info)
        sink.set_times(creation_time=self.first_time, end_time=self.last_time)

    def _write_scalars(self, tag: str, context: dict[str, Any], buffer: _Scalars) -> None:
        steps = np.frombuffer(buffer.steps, dtype=np.int64) if buffer.steps else np.empty(0)
        renumber = needs_renumbering(steps)
        if renumber:
            self.renumbered.append({"name": _name(tag), "context": context})
        series = self.sink.series(_name(tag), context)
        n = len(buffer.steps)
        for start in range(0, n, CHUNK_POINTS):
            end = min(n, start + CHUNK_POINTS)
            original = buffer.steps[start:end].tolist()
            series.extend(
                list(range(start, end)) if renumber else original,
                buffer.values[start:end].tolist(),
                buffer.times[start:end].tolist(),
                original if renumber else None,
            )

    def _write_objects(self) -> None:
        sink = self.sink
        current: int | None = None
        handle: Any = None
        try:
            for seq_key, file_index, offset, index, step, wall_time, outline in self.noted:
                tag = seq_key[0]
                if file_index != current:
                    if handle is not None:
                        handle.close()
                    current = file_index
                    handle = open(self.files[file_index], "rb")  # noqa: SIM115
                value = self._decode(handle, offset, index, outline, tag)
                if value is None:
                    continue
                seq = self.objects[seq_key]
                if seq.is_list and not isinstance(value, list):
                    value = [value]
                elif not seq.is_list and isinstance(value, list):
                    value = value[0]
                at, epoch = (seq.written, step) if seq.renumber else (step, None)
                sink.track_object(
                    value, _name(tag), at, timestamp=wall_time, epoch=epoch, context=seq.context
                )
                seq.written += 1
        finally:
            if handle is not None:
                handle.close()

    def _decode(self, handle: Any, offset: int, index: int, outline: Outline, tag: str) -> Any:
        data = RecordReader.read_at(handle, offset)
        if data is None:
            self.sink.skip(f"{tag}: a record that changed while it was being read")
            return None
        try:
            _, _, values, _ = decode_event(data)
            payload = (values or [])[index][2]
            return self.maker.decode(data, payload, outline)
        except (WireError, ValueError, TypeError, OSError, IndexError) as exc:  # OSError: PIL's
            self.sink.skip(f"{tag}: {outline.source} value that cannot be decoded ({exc})")
            return None


def _context(subset: str | None) -> dict[str, Any]:
    return {"subset": subset} if subset else {}


def _name(tag: str) -> str:
    return tag or EMPTY_TAG_NAME
