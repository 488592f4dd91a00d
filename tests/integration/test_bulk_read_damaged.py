"""A damaged batch in a metric segment reads the same through the bulk reader (`bulk_read`,
plain batches taken from the file's bytes) as through the per-sequence reader (the IPC reader):
a data buffer declared past the message body is refused by both, not read by one alone."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import aim_parquet as aim
from aim_parquet.storage.base.file_checks import U32, flatbuffer_field
from aim_parquet.storage.online import bulk_read
from aim_parquet.storage.online.run_reader import read_metric_columns

QUIET: dict[str, Any] = {"system_tracking_interval": None, "capture_terminal_logs": False}


def _declare_buffer_past_body(segment: Path, buffer: int, extra: int) -> None:
    """Make the first record batch's `buffer` (by index in its buffers vector) declare `extra`
    bytes more than the body holds after its offset (the bytes themselves unchanged)."""
    data = bytearray(segment.read_bytes())
    found = bulk_read._message(bytes(data), 0)  # the schema message
    assert found is not None
    pos, length, body = found
    found = bulk_read._message(bytes(data), pos + length + body)  # the first record batch
    assert found is not None
    meta_at, meta_length, body_length = found
    meta = bytes(data[meta_at : meta_at + meta_length])
    header_pos = flatbuffer_field(meta, U32(meta, 0)[0], 2)
    header = header_pos + U32(meta, header_pos)[0]
    buffers_pos = flatbuffer_field(meta, header, 2)
    entry = meta_at + buffers_pos + U32(meta, buffers_pos)[0] + 4 + 16 * buffer
    offset = struct.unpack_from("<q", data, entry)[0]
    struct.pack_into("<q", data, entry + 8, body_length - offset + extra)
    segment.write_bytes(bytes(data))


@pytest.mark.parametrize("extra", [0, 1, 1 << 62])
@pytest.mark.parametrize("buffer", [1, 3, 5, 7])  # the data buffers of step, value, epoch, time
def test_a_data_buffer_past_the_body_reads_as_the_ipc_reader_reads_it(
    tmp_path: Path, buffer: int, extra: int
) -> None:
    run = aim.Run(repo=tmp_path, **QUIET)
    for step in range(340):
        run.track(3.0 * step, name="loss", step=step, epoch=step // 10)
    run.close()
    (segment,) = (tmp_path / ".aim" / "runs" / run.hash / "seqs").glob("*/*.arrows")
    _declare_buffer_past_body(segment, buffer, extra)
    repo = aim.Repo(tmp_path)
    ((run_hash, info),) = [(m.run.hash, m.info) for m in repo.query_metrics("True")]
    steps, arrays = read_metric_columns(
        repo.layout, run_hash, info, ["value", "epoch", "timestamp"]
    )
    assert len(steps) == (340 if extra == 0 else 0)  # (the IPC reader: a torn tail from there)
    want = (steps, arrays["value"], arrays["epoch"], arrays["timestamp"])
    got = bulk_read.read_metrics_bulk(repo.layout, [(run_hash, info)])
    for a, b in zip(got.get(0, want), want, strict=True):  # (absent: left to the other reader)
        assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
    (metric,) = list(aim.Repo(tmp_path).query_metrics("True"))  # (read with its neighbours)
    assert np.array_equal(metric.values.sparse_numpy()[0], steps)
    frame = aim.Repo(tmp_path).query_metrics("True").to_arrow(include_run=False)
    assert (0 if frame is None else frame.num_rows) == len(steps)
