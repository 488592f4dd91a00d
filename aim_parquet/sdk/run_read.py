"""Sequence access on a run: `metrics()`, `get_metric()`, `dataframe()`, terminal logs, ...

Mixed into every `Run` (through `run_base.RunReadMixin`). The catalogue is read fresh on each
call (one sidecar read), so a read-only run of a live writer sees the sequences it has added since
the run was opened; a writable run flushes its buffers first so it reads what it has tracked; the
catalogue of a run whose writer died is caught up from its segments (`storage.online.catalogue_scan`),
once per Run object while its files stay as they were.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from aim_parquet.format.meta import RunMeta, SequenceInfo
from aim_parquet.format.paths import RepoLayout, canonical_context
from aim_parquet.storage.online.catalogue_scan import ScanCache, discover_sequences, read_catalogue
from aim_parquet.storage.online.run_reader import load_run_meta

if TYPE_CHECKING:
    import pandas

    from aim_parquet.sdk.collections import SingleRunSequenceCollection
    from aim_parquet.sdk.sequence import (
        Audios,
        Context,
        Distributions,
        Figures,
        Images,
        LogLines,
        LogRecords,
        Metric,
        Sequence,
        Texts,
    )

log = logging.getLogger(__name__)

LOGS_SEQUENCE = "logs"
LOG_RECORDS_SEQUENCE = "__log_records"


class RunSequencesMixin:
    """Read access to a run's sequences (Aim's `Run.metrics()`, `get_metric()`, ...)."""

    hash: str
    _layout: RepoLayout

    # -- catalogue -------------------------------------------------------------------------
    def _catalogue(self) -> tuple[RunMeta, list[SequenceInfo]]:
        """The run's metadata and every sequence it has (catalogued or only on disk)."""
        writer = getattr(self, "_writer", None)
        if writer is not None:
            try:
                writer.flush()
            except OSError as exc:
                log.error("aim_parquet: flushing run %s before reading failed: %s", self.hash, exc)
            meta = writer.snapshot()
            return meta, discover_sequences(self._layout, self.hash, meta)
        meta = load_run_meta(self._layout, self.hash)
        cache: ScanCache = self.__dict__.setdefault("_scan_cache", ScanCache())
        return meta, read_catalogue(self._layout, self.hash, meta, cache=cache)

    def _find(self, seq_cls: type[Sequence], name: str, context: Any) -> Any:
        wanted = canonical_context(dict(context) if context else {})
        for info in self._catalogue()[1]:
            if (
                info.name == name
                and seq_cls.accepts(info.kind)
                and canonical_context(info.context) == wanted
            ):
                return seq_cls(info, self, self._layout)
        return None

    def _sequence_class(self, seq_type: str) -> type[Sequence]:
        from aim_parquet.sdk.sequence import SEQUENCE_CLASSES

        for cls in SEQUENCE_CLASSES:
            if cls.sequence_name() == seq_type:
                return cls
        names = ", ".join(c.sequence_name() for c in SEQUENCE_CLASSES)
        raise ValueError(f"unknown sequence type {seq_type!r}; use one of: {names}")

    # -- collections -----------------------------------------------------------------------
    def metrics(self) -> SingleRunSequenceCollection:
        """Every metric of the run."""
        from aim_parquet.sdk.collections import SingleRunSequenceCollection
        from aim_parquet.sdk.sequence import Metric

        return SingleRunSequenceCollection(self, Metric)

    def get_metric(self, name: str, context: Any = None) -> Metric | None:
        """The metric (name, context), or None when the run has no such metric."""
        from aim_parquet.sdk.sequence import Metric

        return self._find(Metric, name, context)  # type: ignore[no-any-return]

    def get_image_sequence(self, name: str, context: Any = None) -> Images | None:
        from aim_parquet.sdk.sequence import Images

        return self._find(Images, name, context)  # type: ignore[no-any-return]

    def get_text_sequence(self, name: str, context: Any = None) -> Texts | None:
        from aim_parquet.sdk.sequence import Texts

        return self._find(Texts, name, context)  # type: ignore[no-any-return]

    def get_audio_sequence(self, name: str, context: Any = None) -> Audios | None:
        from aim_parquet.sdk.sequence import Audios

        return self._find(Audios, name, context)  # type: ignore[no-any-return]

    def get_figure_sequence(self, name: str, context: Any = None) -> Figures | None:
        from aim_parquet.sdk.sequence import Figures

        return self._find(Figures, name, context)  # type: ignore[no-any-return]

    def get_distribution_sequence(self, name: str, context: Any = None) -> Distributions | None:
        from aim_parquet.sdk.sequence import Distributions

        return self._find(Distributions, name, context)  # type: ignore[no-any-return]

    def get_terminal_logs(self) -> LogLines | None:
        """The captured terminal output (sequence 'logs'), or None."""
        from aim_parquet.sdk.sequence import LogLines

        return self._find(LogLines, LOGS_SEQUENCE, None)  # type: ignore[no-any-return]

    def get_log_records(self) -> LogRecords | None:
        """The records of `run.log_info(...)` and friends (sequence '__log_records'), or None."""
        from aim_parquet.sdk.sequence import LogRecords

        return self._find(LogRecords, LOG_RECORDS_SEQUENCE, None)  # type: ignore[no-any-return]

    # -- catalogue summaries ---------------------------------------------------------------
    def iter_metrics_info(self) -> Iterator[tuple[str, Context, Any]]:
        """`(name, context, run)` of every metric."""
        from aim_parquet.format.kinds import METRIC_KINDS

        return self.iter_sequence_info_by_type(METRIC_KINDS)

    def iter_sequence_info_by_type(
        self, dtypes: str | Iterable[str]
    ) -> Iterator[tuple[str, Context, Any]]:
        """`(name, context, run)` of every sequence of the sequence types of `dtypes`: as in Aim,
        a dtype stands for its sequence type, so 'float' also gives int metrics and 'aim.image'
        also image lists."""
        from aim_parquet.sdk.sequence import Context, kinds_like

        wanted = kinds_like([dtypes] if isinstance(dtypes, str) else list(dtypes))
        for info in self._catalogue()[1]:
            if info.kind in wanted:
                yield info.name, Context(info.context), self

    def collect_sequence_info(
        self, sequence_types: str | Iterable[str], skip_last_value: bool = False
    ) -> dict[str, list[dict[str, Any]]]:
        """`{type: [{"name", "context", "values": {last, last_step, ...}}]}` per sequence type
        ('metric', 'images', ...); "values" is left out with `skip_last_value=True`."""
        types = [sequence_types] if isinstance(sequence_types, str) else list(sequence_types)
        classes = {t: self._sequence_class(t) for t in types}
        infos = self._catalogue()[1]
        out: dict[str, list[dict[str, Any]]] = {t: [] for t in types}
        for seq_type, cls in classes.items():
            for info in infos:
                if not cls.accepts(info.kind):
                    continue
                item: dict[str, Any] = {"name": info.name, "context": dict(info.context)}
                if not skip_last_value:
                    item["values"] = _trace_meta(info)
                out[seq_type].append(item)
        return out

    # -- dataframes ------------------------------------------------------------------------
    def dataframe(
        self, include_props: bool = True, include_params: bool = True
    ) -> pandas.DataFrame:
        """One-row pandas DataFrame: hash, props, tags (JSON) and params as `a.b` columns."""
        from aim_parquet.sdk import dataframes

        row = dataframes.run_row(self, include_props=include_props, include_params=include_params)
        return dataframes.runs_to_pandas([row])


def _trace_meta(info: SequenceInfo) -> dict[str, Any]:
    """Aim's per-trace metadata of a catalogue entry."""
    meta: dict[str, Any] = {
        "dtype": info.kind,
        "count": info.count,
        "first_step": info.first_step,
        "last_step": info.last_step,
    }
    if info.is_metric:
        meta.update(first=info.first, last=info.last, min=info.min, max=info.max)
    return meta
