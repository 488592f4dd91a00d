"""`query.seq_columns.matched_entries`: each asked row's matching flat catalogue entries, in
catalogue order, for rows of no entries, rows whose entries all miss, repeated rows and no rows."""

from __future__ import annotations

import numpy as np
import pytest

from aim_parquet.query.seq_columns import SequenceVerdicts, matched_entries

# rows 0..5 of the catalogue: entries [0, 3), [3, 3), [3, 5), [5, 5), [5, 6), [6, 8)
STARTS = [0, 3, 3, 5, 5, 6, 8]
MATCHED = np.array([True, False, True, False, False, True, True, True])


def _verdicts() -> SequenceVerdicts:
    return SequenceVerdicts(np.ones(len(STARTS) - 1, dtype=bool), MATCHED, STARTS)


def _expected(rows: list[int]) -> list[list[int]]:
    """The matched entries of each row, one at a time."""
    return [[i for i in range(STARTS[r], STARTS[r + 1]) if MATCHED[i]] for r in rows]


@pytest.mark.parametrize(
    "rows",
    [
        [0, 1, 2, 3, 4, 5],  # every row: 0-entry rows between rows with hits
        [1, 3],  # only rows of no entries
        [2],  # a row whose entries all miss
        [5, 1, 0],  # out of order, a 0-entry row between rows with hits
        [0, 0, 3, 5, 3],  # repeated rows
        [1, 0],  # a 0-entry row first
        [0, 1],  # a 0-entry row last
    ],
)
def test_matched_entries_per_row(rows: list[int]) -> None:
    found = matched_entries(_verdicts(), np.asarray(rows, dtype=np.intp))
    assert found == _expected(rows)
    assert all(type(i) is int for entries in found for i in entries)


def test_matched_entries_of_no_rows() -> None:
    assert matched_entries(_verdicts(), np.zeros(0, dtype=np.intp)) == []


def test_matched_entries_of_an_empty_catalogue() -> None:
    verdicts = SequenceVerdicts(np.ones(2, dtype=bool), np.zeros(0, dtype=bool), [0, 0, 0])
    assert matched_entries(verdicts, np.asarray([1, 0, 1], dtype=np.intp)) == [[], [], []]
