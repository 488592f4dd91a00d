"""`IndexSnapshot.newest_first` (sorted with numpy) is the order of Python's sort by
(creation_time, hash), newest first: ties, -0.0 and 0.0, infinities, and NaN (left to Python's
sort, as before)."""

from __future__ import annotations

import math
import random

import pytest

from aim_parquet.storage.index.index_entries import IndexSnapshot
from aim_parquet.storage.index.run_records import RunRecord


def _reference(records: dict[str, RunRecord]) -> list[str]:
    ordered = sorted(records.values(), key=lambda r: (r.creation_time, r.hash), reverse=True)
    return [r.hash for r in ordered]


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("with_nan", [False, True])
def test_newest_first_is_pythons_order(seed: int, with_nan: bool) -> None:
    rng = random.Random(seed)
    times = [0.0, -0.0, 1.5, 1.5, 2.0, math.inf, -math.inf, 1e9, 1e9 + 0.5]
    if with_nan:
        times.append(math.nan)
    records = {}
    for i in range(rng.randint(0, 60)):
        run_hash = f"{rng.getrandbits(40):010x}{i:02d}"
        records[run_hash] = RunRecord(run_hash, {"creation_time": rng.choice(times)})
    snapshot = IndexSnapshot(records, (), 0)
    assert [r.hash for r in snapshot.newest_first] == _reference(records)
    stored = snapshot.in_stored_order
    assert [stored[i] for i in snapshot.newest_positions] == list(snapshot.newest_first)
