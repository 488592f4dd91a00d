"""A frame's `time` column is `datetime.fromtimestamp` of each point's timestamp, to the
microsecond (Aim's column), for any timestamp a float holds."""

from __future__ import annotations

import datetime

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from aim_parquet.sdk.dataframes import local_times

STAMPS = st.floats(min_value=0.0, max_value=4_000_000_000.0, allow_nan=False)


@settings(max_examples=2000, deadline=None)
@given(st.lists(STAMPS, min_size=1, max_size=5))
def test_time_column_is_fromtimestamp(stamps: list[float]) -> None:
    got = local_times(np.array(stamps)).astype("datetime64[us]").tolist()
    assert got == [datetime.datetime.fromtimestamp(t) for t in stamps]


def test_a_fraction_near_half_a_microsecond_rounds_as_datetime_does() -> None:
    # scaling these whole timestamps by 1e6 rounded one microsecond off (1 in 10 timestamps)
    stamps = [1676520707.7218266, 1734847319.4366214, 1666507499.8819106]
    got = local_times(np.array(stamps)).tolist()
    assert got == [datetime.datetime.fromtimestamp(t) for t in stamps]


def test_a_missing_timestamp_is_nat() -> None:
    got = local_times(np.array([1700000000.0, np.nan]))
    assert not np.isnat(got[0]) and np.isnat(got[1])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(min_value=-62135596800.0, max_value=253402300799.0), min_size=1))
def test_all_times_known_and_some_missing_give_the_same_times(stamps: list[float]) -> None:
    """A column whose every timestamp is a datetime is converted without masks, in place; the
    same timestamps next to a missing one (the masked way) get the same times."""
    whole = local_times(np.array(stamps))
    masked = local_times(np.array([*stamps, np.nan]))
    assert whole.dtype == masked.dtype == np.dtype("datetime64[us]")
    assert whole.tolist() == masked[:-1].tolist() and np.isnat(masked[-1])
