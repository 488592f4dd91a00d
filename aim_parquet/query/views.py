"""What a query sees: `run` (RunView) and `metric`/`images`/... (SequenceView).

Both are read-only views over metadata only (a RunMeta or the run index's RunRecord, and
SequenceInfo catalogue entries):
evaluating a query never opens a sequence file. They implement the `QueryObject` protocol of
`aim_parquet.query.lang`: `query_attr(name)` and `query_item(key)` return the value or `SafeNone`.

`run.<name>` gives, in this order: a run property (`hash`, `name`, `description`, `experiment`,
`tags`, `archived`, `creation_time`, `created_at`, `updated_at`, `end_time`, `finalized_at`,
`active`, `duration`, `metrics`), else the top-level param `name`. `run["name"]` and
`run["a", "b"]` always read params, so a param shadowed by a property stays reachable.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aim_parquet.errors import QueryError
from aim_parquet.format.kinds import metric_value
from aim_parquet.format.meta import SequenceInfo
from aim_parquet.format.paths import RepoLayout, canonical_context
from aim_parquet.format.run_fields import duration_s, utc_naive
from aim_parquet.format.run_shape import RunFields
from aim_parquet.query.lang import SafeNone
from aim_parquet.storage.index.run_index import CatalogueEntry
from aim_parquet.storage.online.writer_parts import is_run_active


def param_lookup(params: Any, key: Any) -> Any:
    """`params[key]` for a str key or a tuple path of str keys; SafeNone when missing."""
    path = key if isinstance(key, tuple) else (key,)
    node = params
    for part in path:
        if not isinstance(node, dict) or not isinstance(part, str) or part not in node:
            return SafeNone
        node = node[part]
    return node


class RunView:
    """`run` in a query: properties, params and `run.metrics[...]` of one run's metadata."""

    __slots__ = ("meta", "layout", "_active")

    def __init__(self, meta: RunFields, layout: RepoLayout | None = None) -> None:
        self.meta = meta
        self.layout = layout
        self._active: bool | None = None

    def __repr__(self) -> str:
        return f"<RunView {self.meta.hash}>"

    @property
    def active(self) -> bool:
        """`is_run_active` (checked once, only when a query asks); False without a layout."""
        if self._active is None:
            self._active = self.layout is not None and is_run_active(self.layout, self.meta)
        return self._active

    def query_attr(self, name: str) -> Any:
        getter = _RUN_FIELDS.get(name)
        if getter is not None:
            return getter(self)
        return self._param(name)

    def _param(self, name: Any) -> Any:
        return self.meta.param(name, SafeNone) if isinstance(name, str) else SafeNone

    def query_item(self, key: Any) -> Any:
        if type(key) is tuple:
            if not key:
                return self.meta.params
            return param_lookup(self._param(key[0]), key[1:])
        return self._param(key)


_RUN_FIELDS: dict[str, Callable[[RunView], Any]] = {
    "hash": lambda v: v.meta.hash,
    "name": lambda v: v.meta.display_name,
    "description": lambda v: v.meta.description,
    "experiment": lambda v: v.meta.experiment,
    "tags": lambda v: list(v.meta.tags),
    "archived": lambda v: v.meta.archived,
    "creation_time": lambda v: v.meta.creation_time,
    "created_at": lambda v: utc_naive(v.meta.creation_time),
    "updated_at": lambda v: utc_naive(v.meta.updated_at or v.meta.creation_time),
    "end_time": lambda v: v.meta.end_time,
    "finalized_at": lambda v: utc_naive(v.meta.end_time),
    "active": lambda v: v.active,
    "duration": lambda v: duration_s(v.meta.creation_time, v.meta.end_time),
    "metrics": lambda v: RunSequencesView(v.meta, v),
}
RUN_PROPERTIES = frozenset(_RUN_FIELDS)
"""The names `run.<name>` reads as run properties (any other name is a param)."""


class RunSequencesView:
    """`run.metrics`: `run.metrics["loss"]` or `run.metrics["loss", {"subset": "train"}]`."""

    __slots__ = ("meta", "run")

    def __init__(self, meta: RunFields, run: RunView | None = None) -> None:
        self.meta = meta
        self.run = run

    def find(self, name: Any, context: Any) -> SequenceInfo | None:
        if not isinstance(name, str) or not isinstance(context, dict):
            return None
        wanted = canonical_context(context)
        fallback = None
        for info in self.meta.sequences:
            if info.name == name and canonical_context(info.context) == wanted:
                if info.is_metric:
                    return info
                fallback = fallback or info
        return fallback

    def query_item(self, key: Any) -> Any:
        if isinstance(key, tuple):
            if len(key) != 2:
                return SafeNone
            name, context = key
        else:
            name, context = key, {}
        info = self.find(name, context)
        return SafeNone if info is None else SequenceView(info, self.run)

    def query_attr(self, name: str) -> Any:
        return self.query_item(name)


SEQUENCE_FIELDS = (
    "name", "context", "dtype", "kind", "version", "count", "first_step", "last_step",
    "first", "last", "min", "max", "run",
)  # fmt: skip


class SequenceView:
    """`metric` (or `images`, `texts`, ...) in a query: one catalogue entry.

    Fields: `name`, `context` (a dict: `.context.subset`, `.context["subset"]`), `dtype`, `count`,
    `version`, and for metrics `first`, `last`, `first_step`, `last_step`, `min`, `max`.
    `first_step`/`last_step`/`count` are also given for object sequences. `run` is the run view
    (`metric.run.name`, as in Aim). Any other field raises QueryError rather than match nothing.
    """

    __slots__ = ("info", "run")

    def __init__(self, info: SequenceInfo | CatalogueEntry, run: RunView | None = None) -> None:
        self.info = info
        self.run = run

    def __repr__(self) -> str:
        return f"<SequenceView {self.info.name!r} {self.info.context!r}>"

    def query_attr(self, name: str) -> Any:
        info = self.info
        if name == "name":
            return info.name
        if name == "context":
            return info.context
        if name in ("dtype", "kind"):
            return info.kind
        if name == "version":
            return 2 if info.is_metric else 1
        if name == "count":
            return info.count
        if name in ("first_step", "last_step"):
            value = getattr(info, name)
            return SafeNone if value is None else value
        if info.is_metric and name in ("first", "last", "min", "max"):
            value = getattr(info, name)
            if value is None:
                return SafeNone
            return metric_value(value, info.kind)
        if name == "run":
            return SafeNone if self.run is None else self.run
        if name in SEQUENCE_FIELDS:
            return SafeNone
        raise QueryError(
            f"a sequence has no field {name!r} in queries; it has {', '.join(SEQUENCE_FIELDS)}"
        )

    def query_item(self, key: Any) -> Any:
        return self.query_attr(key) if isinstance(key, str) else SafeNone


KEY_FIELDS = frozenset({"name", "context", "dtype", "kind", "version"})
"""The fields of a sequence that its key (`sequence_key`) decides."""


class RecordingSequenceView(SequenceView):
    """A SequenceView that records the fields a query reads (`read`), so the planner knows
    whether a verdict depends on the sequence's key alone."""

    __slots__ = ("read",)

    def __init__(self, info: SequenceInfo | CatalogueEntry, run: RunView | None = None) -> None:
        super().__init__(info, run)
        self.read: set[str] = set()

    def query_attr(self, name: str) -> Any:
        self.read.add(name)
        return super().query_attr(name)


def sequence_key(info: SequenceInfo | CatalogueEntry) -> Any:
    """(name, kind, context) as a hashable key, equal only for equal contexts whose values have
    equal types and texts (`1`, `1.0` and `True` are different keys, and so are `0.0` and
    `-0.0`: the writer keeps them as two sequences), whatever their key order: the one column
    of a frame, labelled by the sorted context (`canonical_context`). A query's verdict is kept
    by `verdict_key`."""
    context = info.context
    if not context:
        return (info.name, info.kind)
    items = tuple(
        (k, float, v.hex()) if type(v) is float else (k, type(v), v)
        for k, v in sorted(context.items())
    )
    try:
        hash(items)
    except TypeError:
        return (info.name, info.kind, json.dumps(context, sort_keys=True, default=repr))
    return (info.name, info.kind, items)


def verdict_key(info: SequenceInfo | CatalogueEntry) -> Any:
    """(name, kind, context) as a hashable key, equal only for sequences no query can tell
    apart by those fields: contexts with the same keys in the same order (`str()` and iteration
    show a dict's order), values of the same types and the same text (`-0.0` is not `0.0`),
    nested values alike. The planner keeps a sequence part's verdict by it."""
    context = info.context
    if type(context) is not dict:
        return (info.name, info.kind, _exact(context))
    if not context:
        return (info.name, info.kind)
    return (info.name, info.kind, tuple([(k, _exact(v)) for k, v in context.items()]))


def _exact(value: Any) -> Any:
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return (kind, value)
    if kind is dict:  # (its keys are strings: contexts are JSON objects)
        return (kind, tuple([(k, _exact(v)) for k, v in value.items()]))
    if kind is float:
        return (kind, value.hex())  # (`-0.0` and `0.0` are equal, their texts are not)
    if kind is list or kind is tuple:
        return (kind, tuple(map(_exact, value)))
    try:
        hash(value)
    except TypeError:
        return (kind, repr(value))
    return (kind, value)  # (bytes, ...: equal values read alike)
