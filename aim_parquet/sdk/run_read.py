"""`ReadableRun`: what read-only and writing runs share: `RunBase`'s identity, properties and
catalogue plus Aim's sequence access (`metrics()`, `get_metric()`, `dataframe()`, terminal logs,
...). `sdk.run.Run` adds the writing; a read-only `Run` is one with no writer.

Every call reads the catalogue fresh (`RunBase._catalogue`), so a read-only run of a live writer
sees the sequences it has added since the run was opened, and a writing run reads what it has
tracked (it flushes first).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from aim_parquet.format.meta import SequenceInfo
from aim_parquet.format.paths import canonical_context
from aim_parquet.format.run_fields import LOG_RECORDS_SEQUENCE, LOGS_SEQUENCE
from aim_parquet.sdk import dataframes
from aim_parquet.sdk.run_base import RunBase
from aim_parquet.sdk.run_sequences import SingleRunSequenceCollection
from aim_parquet.sdk.sequence import (
    SEQUENCE_CLASSES,
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
    kinds_like,
)

if TYPE_CHECKING:
    import pandas

SeqT = TypeVar("SeqT", bound=Sequence)


class ReadableRun(RunBase):
    """A run's sequences (Aim's `Run.metrics()`, `get_metric()`, ...) over its catalogue."""

    def _find(self, seq_cls: type[SeqT], name: str, context: Any) -> SeqT | None:
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
        for cls in SEQUENCE_CLASSES:
            if cls.sequence_name() == seq_type:
                return cls
        names = ", ".join(c.sequence_name() for c in SEQUENCE_CLASSES)
        raise ValueError(f"unknown sequence type {seq_type!r}; use one of: {names}")

    # -- collections -----------------------------------------------------------------------
    def metrics(self) -> SingleRunSequenceCollection:
        """Every metric of the run."""
        return SingleRunSequenceCollection(self, Metric)

    def get_metric(self, name: str, context: Any = None) -> Metric | None:
        """The metric (name, context), or None when the run has no such metric."""
        return self._find(Metric, name, context)

    def get_image_sequence(self, name: str, context: Any = None) -> Images | None:
        return self._find(Images, name, context)

    def get_text_sequence(self, name: str, context: Any = None) -> Texts | None:
        return self._find(Texts, name, context)

    def get_audio_sequence(self, name: str, context: Any = None) -> Audios | None:
        return self._find(Audios, name, context)

    def get_figure_sequence(self, name: str, context: Any = None) -> Figures | None:
        return self._find(Figures, name, context)

    def get_distribution_sequence(self, name: str, context: Any = None) -> Distributions | None:
        return self._find(Distributions, name, context)

    def get_terminal_logs(self) -> LogLines | None:
        """The captured terminal output (sequence 'logs'), or None."""
        return self._find(LogLines, LOGS_SEQUENCE, None)

    def get_log_records(self) -> LogRecords | None:
        """The records of `run.log_info(...)` and friends (sequence '__log_records'), or None."""
        return self._find(LogRecords, LOG_RECORDS_SEQUENCE, None)

    # -- catalogue summaries ---------------------------------------------------------------
    def iter_metrics_info(self) -> Iterator[tuple[str, Context, ReadableRun]]:
        """`(name, context, run)` of every metric."""
        from aim_parquet.format.kinds import METRIC_KINDS

        return self.iter_sequence_info_by_type(METRIC_KINDS)

    def iter_sequence_info_by_type(
        self, dtypes: str | Iterable[str]
    ) -> Iterator[tuple[str, Context, ReadableRun]]:
        """`(name, context, run)` of every sequence of the sequence types of `dtypes`: as in Aim,
        a dtype stands for its sequence type, so 'float' also gives int metrics and 'aim.image'
        also image lists."""
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
