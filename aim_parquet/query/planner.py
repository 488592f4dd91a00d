"""Query planning: which part of a query runs on what metadata, before any data is read.

A query is compiled once (`aim_parquet.query.lang`) and split at its top-level `and`:

1. the **run part** (conjuncts that read only `run`, including the implied
   `run.archived == False`) is evaluated on each run's metadata (from the run index), so runs that
   fail it are dropped without opening any of their files (the executor first evaluates it
   column-wise over every run, `query.prefilter`, and this interpreter only on the runs that
   may match);
2. the **sequence part** (everything else; it may read `run` too) is evaluated on each catalogue
   entry of the surviving runs whose kind the query asks for (`metric` -> numbers, `images` ->
   images, ...);
3. only then does the caller read the columns of the matching sequences, lazily.

`QueryPlan.matches_run` and `QueryPlan.matching_sequences` are those two steps. Within one
execution the sequence part's verdict is kept per (name, kind, context) when it reads nothing
else (not `run`, not a summary), so 10,000 runs with the same `loss` evaluate it once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from aim_parquet.format.kinds import SEQUENCE_KINDS
from aim_parquet.format.meta import SequenceInfo
from aim_parquet.query.lang import CompiledQuery, compile_query
from aim_parquet.query.views import (
    KEY_FIELDS,
    RecordingSequenceView,
    RunView,
    SequenceView,
    verdict_key,
)
from aim_parquet.storage.index.run_index import CatalogueEntry

SeqEntry = TypeVar("SeqEntry", SequenceInfo, CatalogueEntry, SequenceInfo | CatalogueEntry)


@dataclass(frozen=True)
class QueryPlan:
    """A compiled query split into its run part and its sequence part.

    `seq_var` is the sequence variable (`"metric"`, `"images"`, ...) or None for a run query;
    `kinds` are the dtypes the sequence variable ranges over. `run_filter`/`seq_filter` are None
    when that part is always true.
    """

    text: str
    query: CompiledQuery
    run_filter: CompiledQuery | None
    seq_filter: CompiledQuery | None
    seq_var: str | None
    kinds: frozenset[str]

    def matches_run(self, view: RunView) -> bool:
        """Step 1: the run part on run metadata only."""
        return self.run_filter is None or self.run_filter.matches({"run": view})

    def matching_sequences(
        self, view: RunView, infos: Iterable[SeqEntry], memo: dict[Any, bool] | None = None
    ) -> list[SeqEntry]:
        """Step 2: catalogue entries of the queried kinds that satisfy the sequence part.

        `memo` (one dict for all the runs of one execution) keeps the verdict of each sequence
        key (name, kind, context: `verdict_key`, which tells apart contexts in another key
        order) on which it depends alone: when the sequence part does not read `run` and an
        evaluation read only key fields of the sequence (`KEY_FIELDS`), every sequence with
        that key gets the same verdict without evaluating it again."""
        out = []
        seq_filter, var = self.seq_filter, self.seq_var
        if seq_filter is None or var is None:
            return [info for info in infos if info.kind in self.kinds]
        if memo is None or "run" in seq_filter.names:
            for info in infos:
                if info.kind in self.kinds and seq_filter.matches(
                    {"run": view, var: SequenceView(info, view)}
                ):
                    out.append(info)
            return out
        for info in infos:
            if info.kind not in self.kinds:
                continue
            key = verdict_key(info)
            verdict = memo.get(key)
            if verdict is None:
                seen = RecordingSequenceView(info, view)
                verdict = seq_filter.matches({"run": view, var: seen})
                if seen.read <= KEY_FIELDS:
                    memo[key] = verdict
            if verdict:
                out.append(info)
        return out


def plan_query(text: str = "", seq_var: str | None = None) -> QueryPlan:
    """Compile and split `text` for a run query (`seq_var=None`) or a sequence query.

    Raises QuerySyntaxError (a SyntaxError) or QueryError at once for a bad query.
    """
    if seq_var is not None and seq_var not in SEQUENCE_KINDS:
        raise ValueError(
            f"unknown sequence variable {seq_var!r}; use one of {sorted(SEQUENCE_KINDS)}"
        )
    names = frozenset({"run"} if seq_var is None else {"run", seq_var})
    query = compile_query(text or "", allowed_names=names)
    run_part, seq_part = query.split()
    kinds = frozenset() if seq_var is None else SEQUENCE_KINDS[seq_var]
    return QueryPlan(text or "", query, run_part, seq_part, seq_var, kinds)
