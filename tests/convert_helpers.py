"""Helpers for the converter tests: a minimal protobuf/TFRecord *encoder* (independent of the
decoder under test, checked against tensorboardX's pure-Python CRC in tests/converters), and a
reader of everything a converted repository holds, through the public SDK."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLI_TIMEOUT_S = 300
SEQUENCE_TYPES = ("metric", "images", "texts", "distributions", "audios", "figures")


# -- encoding ---------------------------------------------------------------------------------
def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field_bytes(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def field_varint(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def field_double(number: int, value: float) -> bytes:
    return varint(number << 3 | 1) + struct.pack("<d", value)


def field_float(number: int, value: float) -> bytes:
    return varint(number << 3 | 5) + struct.pack("<f", value)


def scalar_event(wall_time: float, step: int, tag: str, value: float) -> bytes:
    summary_value = field_bytes(1, tag.encode()) + field_float(2, value)
    return (
        field_double(1, wall_time)
        + field_varint(2, step)
        + field_bytes(5, field_bytes(1, summary_value))
    )


def version_event(wall_time: float) -> bytes:
    return field_double(1, wall_time) + field_bytes(3, b"brain.Event:2")


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def masked(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord(data: bytes) -> bytes:
    header = struct.pack("<Q", len(data))
    return (
        header
        + struct.pack("<I", masked(crc32c(header)))
        + data
        + struct.pack("<I", masked(crc32c(data)))
    )


def write_scalar_file(path: Path, points: list[tuple[float, int, str, float]]) -> list[int]:
    """An event file with a version event then one scalar event per point; the byte offset of
    each point's record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = bytearray(tfrecord(version_event(points[0][0] if points else 0.0)))
    offsets = []
    for wall, step, tag, value in points:
        offsets.append(len(blob))
        blob += tfrecord(scalar_event(wall, step, tag, value))
    path.write_bytes(bytes(blob))
    return offsets


# -- running the command ----------------------------------------------------------------------
def convert_cli(
    *args: str, python: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python or sys.executable, "-m", "aim_parquet", "convert", *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


# -- reading back -----------------------------------------------------------------------------
@dataclass
class ConvertedRun:
    hash: str
    name: str
    experiment: str
    description: str | None
    tags: list[str]
    archived: bool
    creation_time: float
    end_time: float | None
    params: dict[str, Any]
    # (name, context as sorted JSON) -> (dtype, steps, values, epochs, timestamps)
    sequences: dict[tuple[str, str], tuple[str, list[int], list[Any], list[Any], list[float]]] = (
        field(default_factory=dict)
    )


def ctx_key(context: dict[str, Any] | None) -> str:
    return json.dumps(context or {}, sort_keys=True)


def read_converted(root: Path) -> dict[str, ConvertedRun]:
    """Every run of the repository at `root` by name, with all its sequences."""
    import aim_parquet as aim

    repo = aim.Repo(root)
    out: dict[str, ConvertedRun] = {}
    for run in repo.iter_runs():
        converted = ConvertedRun(
            run.hash,
            run.name,
            run.experiment,
            run.description,
            list(run.tags),
            run.archived,
            run.creation_time,
            run.end_time,
            run[...],
        )
        info = run.collect_sequence_info(list(SEQUENCE_TYPES))
        for seq_type, items in info.items():
            for item in items:
                seq = _sequence(run, seq_type, item["name"], item["context"])
                steps, (values, epochs, times) = seq.data.items_list()
                converted.sequences[(item["name"], ctx_key(item["context"]))] = (
                    item["values"]["dtype"],
                    list(steps),
                    list(values),
                    _epochs(epochs),
                    list(times),
                )
        for getter in (run.get_terminal_logs, run.get_log_records):
            seq = getter()
            if seq is not None:
                steps, (values, epochs, times) = seq.data.items_list()
                converted.sequences[(seq.name, ctx_key({}))] = (
                    seq.dtype,
                    list(steps),
                    list(values),
                    _epochs(epochs),
                    list(times),
                )
        assert converted.name not in out, f"two runs named {converted.name!r}"
        out[converted.name] = converted
    return out


def _epochs(epochs: list[float]) -> list[int | None]:
    """`data.items_list()` epochs (float64, NaN for none, as Aim's) as ints and None."""
    return [None if e != e else int(e) for e in epochs]


def _sequence(run: Any, seq_type: str, name: str, context: dict[str, Any]) -> Any:
    getter = {
        "metric": run.get_metric,
        "images": run.get_image_sequence,
        "texts": run.get_text_sequence,
        "distributions": run.get_distribution_sequence,
        "audios": run.get_audio_sequence,
        "figures": run.get_figure_sequence,
    }[seq_type]
    return getter(name, context)
