"""The prefilter's numpy comparisons of many distinct numbers (`query.prefilter`, from
`_VECTOR_FROM` distinct values) give exactly the verdicts of the interpreter's own operators
applied one value at a time: NaN, infinities, -0.0, ints beyond 2**53 and 2**63, bools and
values of other types mixed in."""

from __future__ import annotations

import ast
import math
import random

import pytest

from aim_parquet.query import prefilter
from aim_parquet.query.planner import plan_query

SPECIAL = [math.nan, math.inf, -math.inf, -0.0, 0.0, 2**53, 2**53 + 1, -(2**63), 2**63, 2**70]
OTHERS = [True, False, None, "1", [1.0], 1.5]


def _values(rng: random.Random) -> list[object]:
    values: list[object] = [rng.uniform(-10, 10) for _ in range(400)]
    values += [rng.randint(-(10**6), 10**6) for _ in range(400)]
    values += [float(rng.randint(-5, 5)) for _ in range(20)] + list(range(-5, 6))
    if rng.random() < 0.5:
        values += SPECIAL
    if rng.random() < 0.5:
        values += OTHERS
    rng.shuffle(values)
    return values


CONSTANTS = ["0", "1.5", "-3", "1e300", "2**53", "2**53 + 1", "2**64", "float('nan')", "-0.0"]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("op", ["==", "!=", "<", "<=", ">", ">="])
@pytest.mark.parametrize("constant", CONSTANTS)
@pytest.mark.parametrize("column_left", [True, False])
def test_numpy_verdicts_are_the_interpreters(
    seed: int, op: str, constant: str, column_left: bool
) -> None:
    text = f"run.x {op} {constant}" if column_left else f"{constant} {op} run.x"
    nodes = plan_query(text).run_filter.nodes  # type: ignore[union-attr]
    node = next(n for n in nodes if "'x'" in ast.dump(n))  # (not the implicit `archived`)
    numeric = prefilter._numeric_test(node)
    leaf = prefilter._leaf_test(node)
    assert numeric is not None and leaf is not None
    values = _values(random.Random(seed))
    expected = prefilter._verdicts_mixed(values, leaf[1])
    got = prefilter._numeric_verdicts(values, leaf[1], numeric)
    assert got.tolist() == expected.tolist()
