"""AimQL comprehensions, generator expressions, isinstance, list/tuple/set and UTC time."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from aim_parquet.errors import QueryError
from aim_parquet.format.meta import RunMeta, SequenceInfo
from aim_parquet.format.paths import sequence_id
from aim_parquet.query.lang import compile_query
from aim_parquet.query.planner import plan_query
from aim_parquet.query.runtime import SafeNone
from aim_parquet.query.views import RunView, SequenceView


class Obj:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def query_attr(self, name: str) -> Any:
        return self.data.get(name, SafeNone)

    def query_item(self, key: Any) -> Any:
        return self.data.get(key, SafeNone) if isinstance(key, str) else SafeNone


RUN = Obj(
    {
        "tags": ["a", "b"],
        "archived": False,
        "hparams": {"lr": 0.1, "bs": None, "opt": "adam"},
        "created_at": dt.datetime(2020, 1, 1),
    }
)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("any(t == 'a' for t in run.tags)", True),
        ("any(t == 'z' for t in run.tags)", False),
        ("all(t in 'ab' for t in run.tags)", True),
        ("[k for k, v in run.hparams.items() if v is None] == ['bs']", True),
        ("{t for t in run.tags} == {'a', 'b'}", True),
        ("{t: i for i, t in [(1, 'a'), (2, 'b')]}['b'] == 2", True),
        ("[x * y for x in [1, 2] for y in [x, 10]] == [1, 10, 4, 20]", True),
        ("[x for x in [1, 2, 3] if x > 1 if x < 3] == [2]", True),
        ("sum(1 for x in run.missing) == 0", True),  # SafeNone iterates as empty
        ("isinstance(run.hparams.lr, float)", True),
        ("isinstance(run.hparams.lr, (int, str))", False),
        ("isinstance(run.hparams.opt, str) and isinstance(run.tags, list)", True),
        ("isinstance(run.created_at, datetime)", True),
        ("list(run.tags) == ['a', 'b'] and tuple(run.tags) == ('a', 'b')", True),
        ("set(run.tags) == {'b', 'a'}", True),
        ("run.created_at < datetime.utcnow()", True),
        ("datetime.now(timezone.utc) > datetime(2020, 1, 1, tzinfo=timezone.utc)", True),
        ("datetime(2020, 1, 1, tzinfo=timezone.utc) < datetime.now(timezone.utc)", True),
        ("datetime.fromtimestamp(0, timezone.utc).year == 1970", True),
        ("[1 for (a, b) in [(1, 2, 3)]]", False),  # a failed unpacking is a non-match
    ],
)
def test_accepted_forms(query: str, expected: bool) -> None:
    assert compile_query(query).matches({"run": RUN}) is expected


def test_generator_is_lazy_and_never_folded() -> None:
    query = compile_query("any(x == 1 for x in [1, 2, 3])")
    assert query.matches({"run": RUN}) and query.matches({"run": RUN})  # a fresh generator each


def test_loops_spend_the_evaluation_budget() -> None:
    query = compile_query("sum(1 for x in [0] * 2000 for y in [0] * 2000) > 0")
    with pytest.raises(QueryError, match="loops take more than 1,000,000 steps"):
        query.matches({"run": RUN})


def test_loop_variables_stay_local() -> None:
    query = compile_query("[t for t in run.tags] == ['a', 'b'] and run.hparams.lr > 0")
    run_part, seq_part = query.split()
    assert run_part is query and seq_part is None  # `t` is no environment name
    with pytest.raises(QueryError, match="unknown name 't'"):
        compile_query("[t for t in run.tags] and t == 'a'")


@pytest.mark.parametrize(
    "query",
    [
        "(x for x in run.tags).gi_frame",  # a generator's frame, then its globals and builtins
        "(x for x in run.tags).gi_frame.f_globals",
        "(x for x in run.tags).gi_code",
        "run.tags.sort",  # methods outside the allow-list, read without calling them
        "run.hparams.opt.upper.mro",
        "run.hparams.keys().mapping",  # the dict behind a view
        "datetime.now(timezone.utc).tzinfo.utcoffset",
        "run.created_at.replace",
        "(1).denominator",
    ],
)
def test_objects_a_query_makes_expose_no_attribute_outside_the_allow_list(query: str) -> None:
    """Attribute names without an underscore (`gi_frame`, `f_globals`, `mro`) are refused at
    evaluation for every value that is not a query object, a dict or a datetime field."""
    compiled = compile_query(query)
    with pytest.raises(AttributeError, match="in queries"):
        compiled.evaluate({"run": RUN})
    assert compiled.matches({"run": RUN}) is False


def _info(*, name: str, context: dict[str, Any], kind: str) -> SequenceInfo:
    return SequenceInfo(sequence_id(name, context), name, context, kind)


def _run_meta() -> RunMeta:
    return RunMeta(hash="a" * 24, creation_time=0.0, name="alpha", params={"lr": 0.1})


def test_metric_run_fields() -> None:
    meta = _run_meta()
    info = _info(name="loss", context={"subset": "train"}, kind="float")
    view = RunView(meta)
    plan = plan_query("metric.run.name == 'alpha' and metric.run.lr == 0.1", "metric")
    assert plan.matching_sequences(view, [info]) == [info]
    other = plan_query("metric.run.name == 'beta'", "metric")
    assert other.matching_sequences(view, [info]) == []
    assert plan_query("metric.run.archived", "metric").query.mentions_archived()


def test_unknown_sequence_field_raises_instead_of_matching_nothing() -> None:
    info = _info(name="loss", context={}, kind="float")
    plan = plan_query("metric.nmae == 'loss'", "metric")
    with pytest.raises(QueryError, match="no field 'nmae'"):
        plan.matching_sequences(RunView(_run_meta()), [info])
    assert SequenceView(info).query_attr("run") is SafeNone  # known, just not given


def test_missing_context_key_is_none_and_the_idiom_to_exclude_it() -> None:
    view = RunView(_run_meta())
    train = _info(name="loss", context={"subset": "train"}, kind="float")
    val = _info(name="loss", context={"subset": "val"}, kind="float")
    system = _info(name="__system__cpu", context={}, kind="float")
    infos = [train, val, system]
    plain = plan_query("metric.context.subset != 'train'", "metric")
    assert plain.matching_sequences(view, infos) == [val, system]
    idiom = plan_query(
        "metric.context.subset is not None and metric.context.subset != 'train'", "metric"
    )
    assert idiom.matching_sequences(view, infos) == [val]
