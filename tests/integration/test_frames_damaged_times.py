"""A point whose stored timestamp no datetime holds (a damaged segment: its bytes set to 1e300)
is a missing `time` in the frames, not a frame of the whole repository that cannot be built
(OverflowError from `time.localtime`, on 7db2c30 too)."""

from __future__ import annotations

import glob
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import aim_parquet as aim
from aim_parquet.sdk.dataframes import local_times
from aim_parquet.storage.base.file_checks import U32, flatbuffer_field
from aim_parquet.storage.online.bulk_read import _message

QUIET = {"system_tracking_interval": None, "capture_terminal_logs": False}


def test_local_times_of_timestamps_no_datetime_holds_are_missing() -> None:
    stamps = np.array([1.7e9, 1e300, -1e300, np.inf, -np.inf, np.nan, 1.7e9 + 0.5])
    got = local_times(stamps)
    assert np.isnat(got[1:6]).all()
    assert got[0] == np.datetime64(pd.Timestamp.fromtimestamp(1.7e9).to_datetime64(), "us")
    assert got[6] - got[0] == np.timedelta64(500_000, "us")


def _damage_first_timestamp(segment: str, value: float) -> None:
    """Set the first point's timestamp of a segment's first record batch to `value`."""
    data = bytearray(Path(segment).read_bytes())
    pos, length, body = _message(bytes(data), 0)  # the schema message
    start, meta_len, _ = _message(bytes(data), pos + length + body)
    meta = bytes(data[start : start + meta_len])
    header_at = flatbuffer_field(meta, U32(meta, 0)[0], 2)
    header = header_at + U32(meta, header_at)[0]
    buffers_at = flatbuffer_field(meta, header, 2)
    buffers = buffers_at + U32(meta, buffers_at)[0]
    offset = struct.unpack_from("<q", meta, buffers + 4 + 16 * 7)[0]  # the timestamp data
    struct.pack_into("<d", data, start + meta_len + offset, value)
    Path(segment).write_bytes(bytes(data))


@pytest.mark.parametrize("value", [1e300, float("inf")])
def test_a_damaged_timestamp_is_a_missing_time(tmp_path: Path, value: float) -> None:
    hashes = []
    for _ in range(2):
        with aim.Run(repo=tmp_path, **QUIET) as run:
            for step in range(5):
                run.track(float(step), name="loss", step=step)
        hashes.append(run.hash)
    (segment,) = glob.glob(f"{tmp_path}/.aim/runs/{hashes[0]}/seqs/*/*.arrows")
    _damage_first_timestamp(segment, value)
    frame = aim.Repo(tmp_path).query_metrics("metric.name == 'loss'").dataframe()
    assert len(frame) == 10
    assert frame["value"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0] * 2
    damaged = frame[(frame["run.hash"] == hashes[0]) & (frame["step"] == 0)]
    assert damaged["time"].isna().all()
    assert frame["time"].notna().sum() == 9
    polars_frame = aim.Repo(tmp_path).query_metrics("metric.name == 'loss'").to_polars()
    assert polars_frame["time"].null_count() == 1
    for metric in aim.Repo(tmp_path).query_metrics("metric.name == 'loss'"):
        assert len(metric.dataframe()) == 5
