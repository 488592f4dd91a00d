"""TFRecord framing, the container of TensorBoard event files, with every CRC checked.

A record is `uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)`
(little endian). A record whose data CRC is wrong is reported and skipped; one whose length CRC is
wrong is reported and the reader searches forward for the next valid record header (where both
CRCs match) instead of stopping there; a file that ends inside a record (a writer killed mid-write,
or still writing) ends cleanly with a report of the bytes left over.
"""

from __future__ import annotations

import mmap
import struct
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aim_parquet.convert.crc32c import (
    crc32c_long,
    crc32c_many,
    fast_crc32c,
    mask,
    mask_array,
)

HEADER_BYTES = 12
FOOTER_BYTES = 4
SHORT_RECORD_BYTES = 256  # up to this length, records are checked in groups of equal length
BATCH_RECORDS = 65536
RESYNC_WINDOW = 1 << 20
_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")


@dataclass(frozen=True)
class RecordProblem:
    """Something wrong in an event file: where, and what was lost."""

    path: Path
    offset: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path} at byte {self.offset}: {self.reason}"


class RecordReader:
    """Iterate over the data of every intact record of one TFRecord file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[RecordProblem] = []

    def __iter__(self) -> Iterator[bytes]:
        with open(self.path, "rb") as fh:
            size = fh.seek(0, 2)
            if size == 0:
                return
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                view = np.frombuffer(mm, dtype=np.uint8)
                try:
                    yield from self._records(mm, view, size)
                finally:
                    del view

    def _records(self, mm: mmap.mmap, view: np.ndarray[Any, Any], size: int) -> Iterator[bytes]:
        pos = 0
        while pos < size:
            spans, pos, broken = self._frame_batch(mm, size, pos)
            good = self._check_data(mm, view, spans)
            for (start, length), is_good in zip(spans, good, strict=True):
                if is_good:
                    yield mm[start : start + length]
                else:
                    self.problems.append(
                        RecordProblem(
                            self.path,
                            start - HEADER_BYTES,
                            f"record of {length} bytes has a wrong CRC; skipped",
                        )
                    )
            if broken:
                pos = self._resync(mm, view, size, pos)

    def _frame_batch(
        self, mm: mmap.mmap, size: int, pos: int
    ) -> tuple[list[tuple[int, int]], int, bool]:
        """Walk up to BATCH_RECORDS record headers from `pos`; (data spans, next position,
        whether a header CRC was wrong at that position). Header CRCs are checked in one go."""
        spans: list[tuple[int, int]] = []
        headers: list[int] = []
        unpack = _HEADER.unpack_from
        while pos < size and len(spans) < BATCH_RECORDS:
            if size - pos < HEADER_BYTES:
                self._truncated(pos, size)
                return spans, size, False
            length, _ = unpack(mm, pos)
            end = pos + HEADER_BYTES + length + FOOTER_BYTES
            if end > size:
                # Either a torn last record or a corrupt length: only a good header CRC tells.
                if self._header_ok(mm, pos):
                    self._truncated(pos, size)
                    return spans, size, False
                return spans, pos, True
            spans.append((pos + HEADER_BYTES, length))
            headers.append(pos)
            pos = end
        bad = self._bad_headers(mm, headers)
        if bad is not None:
            return spans[:bad], headers[bad], True
        return spans, pos, False

    def _truncated(self, pos: int, size: int) -> None:
        self.problems.append(
            RecordProblem(
                self.path,
                pos,
                f"file ends inside a record ({size - pos} bytes left over: a writer stopped "
                "mid-record or is still writing); everything before it was read",
            )
        )

    @staticmethod
    def _header_ok(mm: mmap.mmap, pos: int) -> bool:
        _, crc = _HEADER.unpack_from(mm, pos)
        return bool(mask(_crc(mm[pos : pos + 8])) == crc)

    @staticmethod
    def _bad_headers(mm: mmap.mmap, headers: list[int]) -> int | None:
        """Index of the first record whose length CRC is wrong, or None."""
        if not headers:
            return None
        offsets = np.asarray(headers, dtype=np.int64)
        raw = np.frombuffer(mm, dtype=np.uint8)
        try:
            matrix = raw[offsets[:, None] + np.arange(8)]
            stored = raw[offsets[:, None] + np.arange(8, 12)].copy().view("<u4")[:, 0]
        finally:
            del raw
        wrong = np.flatnonzero(mask_array(crc32c_many(matrix)) != stored)
        return int(wrong[0]) if wrong.size else None

    @staticmethod
    def _check_data(
        mm: mmap.mmap, view: np.ndarray[Any, Any], spans: list[tuple[int, int]]
    ) -> list[bool]:
        """Whether each record's data CRC matches."""
        good = [True] * len(spans)
        fast = fast_crc32c()
        groups: dict[int, list[int]] = defaultdict(list)
        for i, (start, length) in enumerate(spans):
            stored = _FOOTER.unpack_from(mm, start + length)[0]
            if fast is not None or length > SHORT_RECORD_BYTES:
                good[i] = mask(_crc(mm[start : start + length])) == stored
            else:
                groups[length].append(i)
        for length, members in groups.items():
            starts = np.fromiter((spans[i][0] for i in members), dtype=np.int64, count=len(members))
            if length:
                crcs = crc32c_many(view[starts[:, None] + np.arange(length)])
            else:
                crcs = np.full(len(members), 0, dtype=np.uint32)
            stored = view[(starts + length)[:, None] + np.arange(4)].copy().view("<u4")[:, 0]
            for i, ok in zip(members, mask_array(crcs) == stored, strict=True):
                good[i] = bool(ok)
        return good

    def _resync(self, mm: mmap.mmap, view: np.ndarray[Any, Any], size: int, pos: int) -> int:
        """After a bad length CRC at `pos`, the next offset holding an intact record (both CRCs
        right), or `size` when none is left; the bytes in between are reported."""
        candidate = pos + 1
        while candidate + HEADER_BYTES <= size:
            stop = min(size - HEADER_BYTES + 1, candidate + RESYNC_WINDOW)
            windows = np.lib.stride_tricks.sliding_window_view(view[candidate : stop + 11], 12)
            crcs = mask_array(crc32c_many(np.ascontiguousarray(windows[:, :8])))
            stored = np.ascontiguousarray(windows[:, 8:12]).view("<u4")[:, 0]
            for hit in np.flatnonzero(crcs == stored):
                at = candidate + int(hit)
                length = _HEADER.unpack_from(mm, at)[0]
                end = at + HEADER_BYTES + length
                if end + FOOTER_BYTES > size:
                    continue
                if mask(_crc(mm[at + HEADER_BYTES : end])) == _FOOTER.unpack_from(mm, end)[0]:
                    self._lost(pos, at)
                    return at
            candidate = stop
        self._lost(pos, size, is_eof=True)
        return size

    def _lost(self, start: int, end: int, *, is_eof: bool = False) -> None:
        where = (
            "the end of the file (no intact record after it)"
            if is_eof
            else "the next intact record"
        )
        self.problems.append(
            RecordProblem(
                self.path,
                start,
                f"corrupt record header; {end - start} bytes skipped up to {where}",
            )
        )


def _crc(data: bytes) -> int:
    fast = fast_crc32c()
    return fast(data) if fast is not None else crc32c_long(data)
