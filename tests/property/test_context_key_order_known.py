"""A known disagreement found by the catalogue-columns property test (tests/property/
test_catalogue_columns_equivalence.py) in a fresh-clone CI run, and present on main (adccdf5) too:
with contexts that are equal dicts in another key order ({"b": 1, "a": 2} and {"a": 2, "b": 1}),
`str(metric.context) == "{'b': 1, 'a': 2}" and run.archived` matches one sequence fewer of a
resumed archived run through the index's catalogue columns than the interpreter does. Kept as a
strict xfail on the property test's own seed-2 repository until it is fixed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.property.test_catalogue_columns_equivalence import _check, _write_repo


@pytest.mark.xfail(
    strict=True,
    reason="context key order: the columns' verdict for str(metric.context) differs from the "
    "interpreter's on a resumed archived run (missing the 'lôss' sequence); also on adccdf5",
)
def test_str_of_a_context_in_another_key_order_on_an_archived_run(tmp_path: Path) -> None:
    live = _write_repo(tmp_path, 2, 24)
    try:
        _check(tmp_path, "(str(metric.context) == \"{'b': 1, 'a': 2}\") and (run.archived)")
    finally:
        for run in live:
            run.close()
