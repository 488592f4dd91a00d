"""A disagreement the catalogue-columns property test (tests/property/
test_catalogue_columns_equivalence.py) found in a fresh-clone CI run, also on main (adccdf5),
now fixed: with contexts that are equal dicts in another key order ({"b": 1, "a": 2} and
{"a": 2, "b": 1}), `str(metric.context) == "{'b': 1, 'a': 2}" and run.archived` matched one
sequence fewer (the resumed archived run's 'lôss') than the interpreter. The planner's memo
(`QueryPlan.matching_sequences`, for the runs the catalogue columns do not decide) kept a
verdict per (name, kind, context) with the context's keys sorted, so a verdict that read the
key order (`str()`) was given to the same context in the other order; it is now kept per
`query.views.verdict_key` (the stored order, value types and texts). Kept on the property
test's own seed-2 repository; tests/integration/test_context_key_order.py is the small one."""

from __future__ import annotations

from pathlib import Path

from tests.property.test_catalogue_columns_equivalence import _check, _write_repo


def test_str_of_a_context_in_another_key_order_on_an_archived_run(tmp_path: Path) -> None:
    live = _write_repo(tmp_path, 2, 24)
    try:
        _check(tmp_path, "(str(metric.context) == \"{'b': 1, 'a': 2}\") and (run.archived)")
    finally:
        for run in live:
            run.close()
