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


def _first_batch(data: bytearray) -> tuple[int, bytes, int, int]:
    """(where its metadata starts, the metadata, its body length, its header table) of the
    first record batch of a segment."""
    found = bulk_read._message(bytes(data), 0)  # the schema message
    assert found is not None
    pos, length, body = found
    found = bulk_read._message(bytes(data), pos + length + body)
    assert found is not None
    meta_at, meta_length, body_length = found
    meta = bytes(data[meta_at : meta_at + meta_length])
    header_pos = flatbuffer_field(meta, U32(meta, 0)[0], 2)
    return meta_at, meta, body_length, header_pos + U32(meta, header_pos)[0]


def _declare_buffer_past_body(segment: Path, buffer: int, extra: int) -> None:
    """Make the first record batch's `buffer` (by index in its buffers vector) declare `extra`
    bytes more than the body holds after its offset (the bytes themselves unchanged)."""
    data = bytearray(segment.read_bytes())
    meta_at, meta, body_length, header = _first_batch(data)
    buffers_pos = flatbuffer_field(meta, header, 2)
    entry = meta_at + buffers_pos + U32(meta, buffers_pos)[0] + 4 + 16 * buffer
    offset = struct.unpack_from("<q", data, entry)[0]
    struct.pack_into("<q", data, entry + 8, body_length - offset + extra)
    segment.write_bytes(bytes(data))


def _one_run(repo: Path) -> Path:
    """A run of 340 points in one segment (several batches); its segment."""
    run = aim.Run(repo=repo, **QUIET)
    for step in range(340):
        run.track(3.0 * step, name="loss", step=step, epoch=step // 10)
    run.close()
    (segment,) = (repo / ".aim" / "runs" / run.hash / "seqs").glob("*/*.arrows")
    return segment


def _reads_agree(repo_dir: Path) -> int:
    """The points of the repository's one metric read by the bulk reader, by iteration and as
    a frame are those of its own read (`read_metric_columns`, the IPC reader); their count."""
    repo = aim.Repo(repo_dir)
    ((run_hash, info),) = [(m.run.hash, m.info) for m in repo.query_metrics("True")]
    steps, arrays = read_metric_columns(
        repo.layout, run_hash, info, ["value", "epoch", "timestamp"]
    )
    want = (steps, arrays["value"], arrays["epoch"], arrays["timestamp"])
    got = bulk_read.read_metrics_bulk(repo.layout, [(run_hash, info)])
    for a, b in zip(got.get(0, want), want, strict=True):  # (absent: left to the other reader)
        assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
    (metric,) = list(aim.Repo(repo_dir).query_metrics("True"))  # (read with its neighbours)
    assert np.array_equal(metric.values.sparse_numpy()[0], steps)
    frame = aim.Repo(repo_dir).query_metrics("True").to_arrow(include_run=False)
    assert (0 if frame is None else frame.num_rows) == len(steps)
    return len(steps)


@pytest.mark.parametrize("extra", [0, 1, 1 << 62])
@pytest.mark.parametrize("buffer", [1, 3, 5, 7])  # the data buffers of step, value, epoch, time
def test_a_data_buffer_past_the_body_reads_as_the_ipc_reader_reads_it(
    tmp_path: Path, buffer: int, extra: int
) -> None:
    segment = _one_run(tmp_path)
    _declare_buffer_past_body(segment, buffer, extra)
    assert _reads_agree(tmp_path) == (340 if extra == 0 else 0)  # (the IPC reader: torn there)


def test_a_batch_of_an_old_metadata_version_reads_as_the_ipc_reader_reads_it(
    tmp_path: Path,
) -> None:
    """One flipped byte makes the first batch's message say metadata version V1, which the
    IPC reader refuses (and with it the rest of the segment); the plain read took its bytes."""
    segment = _one_run(tmp_path)
    data = bytearray(segment.read_bytes())
    meta_at, meta, _body, _header = _first_batch(data)
    version = flatbuffer_field(meta, U32(meta, 0)[0], 0)
    assert version and meta[version] == 4  # (V5)
    data[meta_at + version] = 0
    segment.write_bytes(bytes(data))
    assert _reads_agree(tmp_path) == 0


@pytest.mark.parametrize("rows", [341, 1 << 32, 1 << 40])
def test_a_batch_claiming_more_rows_than_its_body_holds_allocates_nothing_for_them(
    tmp_path: Path, rows: int
) -> None:
    """A batch whose length field claims rows its body cannot hold: no array of that many rows
    is made (a flipped byte gave MemoryError: 'Unable to allocate 256. GiB'), the reads agree."""
    segment = _one_run(tmp_path)
    data = bytearray(segment.read_bytes())
    meta_at, meta, _body, header = _first_batch(data)
    length = flatbuffer_field(meta, header, 0)
    struct.pack_into("<q", data, meta_at + length, rows)
    segment.write_bytes(bytes(data))
    _reads_agree(tmp_path)
