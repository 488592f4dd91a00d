"""The planner and the query views on metadata only (no files): splitting, run and sequence
fields, missing values, the default archived filter."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from aim_parquet.errors import QueryError, QuerySyntaxError
from aim_parquet.format.kinds import SEQUENCE_KINDS
from aim_parquet.format.meta import RunMeta, SequenceInfo
from aim_parquet.query.lang import SafeNone
from aim_parquet.query.planner import plan_query
from aim_parquet.query.views import RunView, SequenceView, param_lookup

T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


def seq(
    name: str, context: dict[str, Any] | None = None, kind: str = "float", **kw: Any
) -> SequenceInfo:
    return SequenceInfo(seq_id="0" * 20, name=name, context=context or {}, kind=kind, **kw)


def meta(**kw: Any) -> RunMeta:
    base: dict[str, Any] = {"hash": "a" * 24, "creation_time": T0}
    base.update(kw)
    return RunMeta(**base)


LOSS = seq(
    "loss",
    {"subset": "train"},
    count=3,
    first_step=0,
    last_step=2,
    first=3.0,
    last=1.0,
    min=1.0,
    max=3.0,
)
ACC = seq(
    "acc", {}, kind="int", count=2, first_step=0, last_step=1, first=0, last=1, min=0.0, max=1.0
)
IMG = seq("samples", {"subset": "val"}, kind="list(aim.image)", count=4, first_step=0, last_step=1)
RUN = meta(
    name="Run # 2",
    experiment="exp",
    tags=("v1.0", "best"),
    end_time=T0 + 60,
    params={"hparams": {"lr": 0.001, "batch_size": 32}, "name": "param-name", "seed": 7},
    sequences=(LOSS, ACC, IMG),
)


def run_matches(text: str, m: RunMeta = RUN) -> bool:
    return plan_query(text).matches_run(RunView(m))


def seq_matches(text: str, info: SequenceInfo, var: str = "metric", m: RunMeta = RUN) -> bool:
    plan = plan_query(text, var)
    view = RunView(m)
    return plan.matches_run(view) and plan.matching_sequences(view, [info]) == [info]


def test_split_puts_run_only_conjuncts_first() -> None:
    plan = plan_query(
        "metric.name == 'loss' and run.hparams.lr < 0.01 and metric.last > 1", "metric"
    )
    assert plan.run_filter is not None and plan.seq_filter is not None
    assert "hparams" in plan.run_filter.text and "archived" in plan.run_filter.text
    assert "metric.name" in plan.seq_filter.text and "hparams" not in plan.seq_filter.text
    assert plan.kinds == SEQUENCE_KINDS["metric"]


def test_empty_query_keeps_only_the_archived_filter() -> None:
    plan = plan_query("", "metric")
    assert plan.seq_filter is None
    assert plan.run_filter is not None
    assert run_matches("")
    assert not run_matches("", meta(archived=True))


def test_explicit_archived_disables_default_filter() -> None:
    archived = meta(archived=True)
    assert run_matches("run.archived == True", archived)
    assert not run_matches("run.archived == True")


def test_or_across_run_and_metric_stays_in_the_sequence_part() -> None:
    plan = plan_query("run.seed == 7 or metric.name == 'x'", "metric")
    assert plan.seq_filter is not None and "run.seed" in plan.seq_filter.text
    assert seq_matches("run.seed == 7 or metric.name == 'x'", ACC)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("run.hparams.lr == 0.001", True),
        ("run['hparams', 'lr'] == 0.001", True),
        ("run['hparams']['lr'] == 0.001", True),
        ("run['hparams'].batch_size == 32", True),
        ("1e-5 < run.hparams.lr < 1e-2", True),
        ("1e-5 < run.hparams.lr < 1e-4", False),
        ("run.hparams.lr in [0.001, 0.005]", True),
        ("run.hparams.lr not in [0.001]", False),
        ("run.hparams.missing == None", True),
        ("run.hparams.missing > 1", False),
        ("run.hparams.missing < 1", False),
        ("run.nothing.deeper.still == None", True),
        ("run.hparams.missing + 1 > 0", False),
        ("run.name == 'Run # 2'", True),
        ("run['name'] == 'param-name'", True),
        ("run.experiment == 'exp'", True),
        ("'v1.0' in run.tags", True),
        ("'nope' in run.tags", False),
        ("run.hash.startswith('aaa')", True),
        ("run.duration == 60", True),
        ("run.active == False", True),
        ("run.end_time > run.creation_time", True),
        ("run.created_at.year == 2023 and run.created_at.month == 11", True),
        ("run.created_at < datetime(2024, 1, 1)", True),
        ("run.finalized_at > datetime(2023, 11, 14)", True),
        ("run.metrics['loss', {'subset': 'train'}].last < 2", True),
        ("run.metrics['loss', {'subset': 'val'}].last < 2", False),
        ("run.metrics['loss'].last == None", True),
        ("run.metrics['acc'].max == 1", True),
        ("run.metrics['acc'].last_step == 1", True),
        ("not run.archived and run.seed % 2 == 1", True),
        ("abs(run.seed - 10) == 3 and len(run.tags) == 2", True),
    ],
)
def test_run_query_forms(text: str, expected: bool) -> None:
    assert run_matches(text) is expected


@pytest.mark.parametrize(
    "text, info, expected",
    [
        ("metric.name == 'loss'", LOSS, True),
        ("metric.name == 'loss'", ACC, False),
        ("metric.context.subset == 'train'", LOSS, True),
        ("metric.context['subset'] == 'train'", LOSS, True),
        ("metric.context.subset == None", ACC, True),
        ("metric.last < 2 and metric.first == 3", LOSS, True),
        ("metric.min == 1 and metric.max == 3", LOSS, True),
        ("metric.last_step == 2 and metric.first_step == 0", LOSS, True),
        ("metric.dtype == 'int'", ACC, True),
        ("metric.context.nope == None", LOSS, True),
        ("metric.name.endswith('oss') and run.hparams.lr >= 0.001", LOSS, True),
    ],
)
def test_metric_query_forms(text: str, info: SequenceInfo, expected: bool) -> None:
    assert seq_matches(text, info) is expected


def test_unknown_metric_field_raises() -> None:
    with pytest.raises(QueryError, match="no field 'nope'"):
        seq_matches("metric.nope == None", LOSS)


def test_kinds_restrict_sequences() -> None:
    plan = plan_query("", "images")
    view = RunView(RUN)
    assert plan.matching_sequences(view, RUN.sequences) == [IMG]
    assert plan_query("", "metric").matching_sequences(view, RUN.sequences) == [LOSS, ACC]


def test_images_variable() -> None:
    assert seq_matches("images.name == 'samples' and images.context.subset == 'val'", IMG, "images")
    assert seq_matches("images.last == None and images.count == 4", IMG, "images")


def test_syntax_error_is_a_syntax_error() -> None:
    with pytest.raises(SyntaxError):
        plan_query("run.hparams.lr >", None)
    with pytest.raises(QuerySyntaxError):
        plan_query("metric.name == ", "metric")


def test_refused_names() -> None:
    with pytest.raises(QueryError):
        plan_query("metric.name == 'loss'", None)  # no `metric` in a run query
    with pytest.raises(QueryError):
        plan_query("run.__class__ == 1", None)
    with pytest.raises(ValueError, match="unknown sequence variable"):
        plan_query("", "nonsense")


def test_views_answer_safe_none_for_missing() -> None:
    view = RunView(RUN)
    assert view.query_attr("unknown") is SafeNone
    assert view.query_item(("hparams", "nope")) is SafeNone
    assert view.query_item(42) is SafeNone
    assert view.query_attr("metrics").query_item(("loss", "bad", "key")) is SafeNone
    assert SequenceView(IMG).query_attr("min") is SafeNone
    assert SequenceView(LOSS).query_item(3) is SafeNone
    assert param_lookup({"a": {"b": 1}}, ("a", "b")) == 1
    assert isinstance(view.query_attr("created_at"), datetime)
    assert view.query_attr("active") is False  # finished run


TWINS = [  # equal dicts (or nearly) that a query can tell apart
    {"b": 1, "a": 2}, {"a": 2, "b": 1}, {"x": 0.0}, {"x": -0.0}, {"x": 1}, {"x": True},
    {"x": 1.0}, {"n": {"a": 1, "b": 2}}, {"n": {"b": 2, "a": 1}}, {"l": [{"a": 1, "b": 2}]},
    {"l": [{"b": 2, "a": 1}]}, {}, {"x": None}, {"x": "1"},
]  # fmt: skip


@pytest.mark.parametrize("first", range(len(TWINS)))
@pytest.mark.parametrize("text", ["str(metric.context)", "list(metric.context)"])
def test_the_memo_keeps_a_verdict_per_context_as_stored(first: int, text: str) -> None:
    """The sequence part's verdicts shared between runs (`memo`) are those without it, whatever
    context is seen first: a context's key order, `-0.0` and nested orders tell contexts apart."""
    view = RunView(RUN)
    order = [*TWINS[first:], *TWINS[:first]]
    for shown in TWINS:
        seen = str(shown) if text.startswith("str") else list(shown)
        plan = plan_query(f"{text} == {seen!r}", "metric")
        memo: dict[Any, bool] = {}
        for context in order:  # one run each, the memo shared
            entry = [seq("loss", context)]
            assert plan.matching_sequences(view, entry, memo) == plan.matching_sequences(
                view, entry
            ), (plan.text, context)
