"""TFRecord framing and event decoding on files built byte by byte: intact, truncated, with a
wrong data CRC, with a wrong length CRC (resynchronised), empty."""

from __future__ import annotations

from pathlib import Path

import pytest

from aim_parquet.convert.protowire import WireError
from aim_parquet.convert.tb_proto import decode_event, decode_scalar_event
from aim_parquet.convert.tfrecord import RecordReader
from tests.convert_helpers import scalar_event, version_event, write_scalar_file

POINTS = [(1000.0 + i, i, "loss" if i % 2 else "acc", i / 8) for i in range(40)]


def _steps(path: Path) -> tuple[list[int], list[str]]:
    reader = RecordReader(path)
    steps = []
    for data in reader:
        _, step, values, others = decode_event(data)
        if values:
            steps.append(step)
    return steps, [p.reason for p in reader.problems]


def test_intact_file_gives_every_event(tmp_path: Path) -> None:
    path = tmp_path / "events.out.tfevents.1"
    write_scalar_file(path, POINTS)
    wall, step, values, others = decode_event(scalar_event(12.5, 7, "loss", 0.25))
    assert (wall, step, values, others) == (12.5, 7, [("loss", "simple", 0.25, None, None)], [])
    steps, problems = _steps(path)
    assert steps == list(range(40)) and problems == []


def test_truncated_file_ends_cleanly_with_a_report(tmp_path: Path) -> None:
    path = tmp_path / "events.out.tfevents.1"
    offsets = write_scalar_file(path, POINTS)
    data = path.read_bytes()
    for cut in (offsets[-1] + 5, offsets[-1] + 13, len(data) - 1):
        path.write_bytes(data[:cut])
        steps, problems = _steps(path)
        assert steps == list(range(39))
        assert len(problems) == 1 and "ends inside a record" in problems[0]


def test_wrong_data_crc_skips_only_that_record(tmp_path: Path) -> None:
    path = tmp_path / "events.out.tfevents.1"
    offsets = write_scalar_file(path, POINTS)
    data = bytearray(path.read_bytes())
    data[offsets[10] + 14] ^= 0xFF  # a byte of record 10's data
    path.write_bytes(bytes(data))
    steps, problems = _steps(path)
    assert steps == [i for i in range(40) if i != 10]
    assert len(problems) == 1 and "wrong CRC" in problems[0]


@pytest.mark.parametrize("byte", [0, 3, 9])
def test_wrong_length_crc_resynchronises_at_the_next_record(tmp_path: Path, byte: int) -> None:
    path = tmp_path / "events.out.tfevents.1"
    offsets = write_scalar_file(path, POINTS)
    data = bytearray(path.read_bytes())
    data[offsets[20] + byte] ^= 0x5A  # the length or its CRC of record 20
    path.write_bytes(bytes(data))
    steps, problems = _steps(path)
    assert steps == [i for i in range(40) if i != 20]
    assert len(problems) == 1 and "corrupt record header" in problems[0]


def test_garbage_to_the_end_is_reported_once(tmp_path: Path) -> None:
    path = tmp_path / "events.out.tfevents.1"
    offsets = write_scalar_file(path, POINTS)
    data = path.read_bytes()
    path.write_bytes(data[: offsets[30]] + b"\xff" * 500)
    steps, problems = _steps(path)
    assert steps == list(range(30))
    assert len(problems) == 1 and "end of the file" in problems[0]


def test_empty_file_has_no_records(tmp_path: Path) -> None:
    path = tmp_path / "events.out.tfevents.1"
    path.write_bytes(b"")
    assert _steps(path) == ([], [])


def test_malformed_event_bytes_raise_wire_error() -> None:
    with pytest.raises(WireError):
        decode_event(b"\x2a\x10\x0a")  # a summary field longer than the message


@pytest.mark.parametrize(
    ("step", "tag"), [(0, "loss"), (1, "a"), (300, "x" * 100), (2**40, "t"), (-5, "neg")]
)
def test_scalar_fast_path_agrees_with_the_general_decoder(step: int, tag: str) -> None:
    data = scalar_event(1234.5, step, tag, 0.75)
    wall, got_step, values, _ = decode_event(data)
    assert values is not None
    assert decode_scalar_event(data) == (wall, got_step, tag.encode(), values[0][2])
    assert got_step == step


def test_scalar_fast_path_declines_other_events() -> None:
    assert decode_scalar_event(scalar_event(1.0, 3, "x" * 200, 0.5)) is None  # long tag
    assert decode_scalar_event(version_event(1.0)) is None
    with_more = scalar_event(1.0, 3, "loss", 0.5) + bytes([0x18, 0x01])  # an unknown field
    assert decode_scalar_event(with_more) is None
