"""Run facts have one home (`format.run_fields`, `format.run_shape`): the sidecar's RunMeta and
the run index's RunRecord give every `RunFields` member alike, and a catalogue entry's summary is
made of explicit fields the type checker sees."""

from __future__ import annotations

import json
from datetime import datetime

from aim_parquet.format.meta import RunMeta, SequenceInfo
from aim_parquet.format.paths import sequence_id
from aim_parquet.format.run_fields import (
    DEFAULT_EXPERIMENT,
    display_name,
    duration_s,
    experiment_or_default,
    utc_naive,
)
from aim_parquet.format.run_shape import RunFields
from aim_parquet.storage.index.run_records import CatalogueEntry, RunRecord

RUN_HASH = "0123456789abcdef01234567"


def _fields() -> list[str]:
    return sorted(name for name in vars(RunFields) if not name.startswith("_") and name != "param")


def _record(meta: RunMeta) -> RunRecord:
    return RunRecord(meta.hash, json.loads(meta.dumps()))


def test_run_meta_and_run_record_give_the_same_fields() -> None:
    context = {"subset": "val"}
    seq_id = sequence_id("loss", context)
    info = SequenceInfo(seq_id, "loss", context, "float", 3, 0, 2, 1.0, 0.5, 0.5, 1.0)
    for meta in (
        RunMeta(hash=RUN_HASH, creation_time=10.0),
        RunMeta(
            hash=RUN_HASH,
            creation_time=10.0,
            name="mine",
            description="d",
            experiment="exp",
            tags=("a", "b"),
            archived=True,
            end_time=12.5,
            params={"lr": 0.1},
            sequences=(info,),
            updated_at=12.5,
        ),
    ):
        record = _record(meta)
        assert len(_fields()) >= 12
        for name in _fields():
            assert getattr(record, name) == getattr(meta, name), name
        assert record.param("lr", "none") == meta.param("lr", "none")


def test_the_defaults_and_derived_times_are_one_rule() -> None:
    unnamed = RunMeta(hash=RUN_HASH, creation_time=10.0)
    assert unnamed.experiment == DEFAULT_EXPERIMENT == experiment_or_default("")
    assert experiment_or_default(None) == "default" and experiment_or_default("x") == "x"
    assert unnamed.display_name == display_name(RUN_HASH, None) == f"Run: {RUN_HASH}"
    assert display_name(RUN_HASH, "") == ""  # an empty name is the run's own
    assert duration_s(10.0, 12.5) == 2.5
    assert duration_s(10.0, None, now=15.0) == 5.0
    assert utc_naive(None) is None
    assert utc_naive(0.0) == datetime(1970, 1, 1)


def test_a_catalogue_entry_has_explicit_summary_fields() -> None:
    assert "__getattr__" not in vars(CatalogueEntry)
    info = SequenceInfo(sequence_id("acc", {}), "acc", {}, "int", 4, 1, 7, 3, 9, 2.0, 9.0)
    meta = RunMeta(hash=RUN_HASH, creation_time=1.0, sequences=(info,))
    (entry,) = _record(meta).catalogue()
    for name in ("count", "first_step", "last_step", "first", "last", "min", "max"):
        assert isinstance(vars(CatalogueEntry)[name], property), name
        assert getattr(entry, name) == getattr(info, name), name
    assert entry.info == info
