"""``Audio``: an mp3, wav or flac clip stored byte for byte.

Inputs: a file path (format taken from the extension when not given), ``bytes``, a binary file object
(``io.BytesIO``: its whole content), or a numpy array / tensor encoded here as 16-bit PCM WAV with the
standard library's ``wave``. When the format is neither given nor in the file name it is recognised
from the first bytes (RIFF/WAVE, fLaC, ID3 or an MPEG layer III frame).
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import numpy as np

from aim_parquet.errors import UnsupportedValueError

from .base import (
    CaptionedObject,
    InvalidObjectError,
    ObjectRecord,
    as_ndarray,
    caption_text,
    meta_field,
    read_input_file,
)

__all__ = ["DEFAULT_RATE", "Audio"]

FORMATS = ("mp3", "wav", "flac")
DEFAULT_RATE = 22500  # Aim's default sample rate for numpy input
MAX_CHANNELS = 16
_PCM_DTYPES: dict[int, np.dtype[Any]] = {
    1: np.dtype(np.uint8),
    2: np.dtype("<i2"),
    4: np.dtype("<i4"),
}


class Audio(CaptionedObject):
    """An audio clip with a format (mp3/wav/flac), a caption and, when known, a sample rate."""

    AIM_NAME = "aim.audio"

    _payload: bytes
    _format: str
    _caption: str
    _rate: int | None

    def __init__(
        self,
        data: Any,
        format: str = "",
        caption: str = "",
        rate: int | None = None,
    ) -> None:
        self._caption = caption_text(caption)
        fmt = _normalize_format(format)
        if rate is not None and (
            isinstance(rate, bool) or not isinstance(rate, int | np.integer) or rate <= 0
        ):
            raise InvalidObjectError(
                f"rate must be a positive int (samples per second), got {rate!r}"
            )
        if isinstance(data, bytes | bytearray | memoryview):
            payload = bytes(data)
        elif isinstance(data, io.BytesIO):
            payload = data.getvalue()
        elif isinstance(data, str | os.PathLike):
            payload = read_input_file(data, "Audio")
            fmt = fmt or _format_from_name(os.fspath(data))
        elif callable(getattr(data, "read", None)):
            payload = data.read()
            if not isinstance(payload, bytes):
                raise UnsupportedValueError(
                    "Audio file objects must be opened in binary mode ('rb')"
                )
        else:
            array = as_ndarray(data)
            if array is None:
                raise UnsupportedValueError(
                    f"Audio cannot be made from {type(data).__name__}; pass a file path, bytes, "
                    "io.BytesIO, or a numpy array / tensor of samples"
                )
            if fmt not in (None, "wav"):
                raise InvalidObjectError(
                    f"arrays are encoded as WAV; format must be 'wav' or omitted, got {format!r}"
                )
            fmt = "wav"
            rate = int(rate) if rate is not None else DEFAULT_RATE
            payload = encode_wav(array, rate)
        fmt = fmt or _sniff_format(payload)
        if fmt is None:
            raise InvalidObjectError(
                "Audio format could not be inferred; pass format='mp3', 'wav' or 'flac'"
            )
        if rate is None and fmt == "wav":
            rate = _wav_rate(payload)
        self._payload = payload
        self._format = fmt
        self._rate = None if rate is None else int(rate)

    # ------------------------------------------------------------------ record

    def to_record(self) -> ObjectRecord:
        return ObjectRecord(
            payload=self._payload,
            meta={"caption": self._caption, "format": self._format, "rate": self._rate},
        )

    @classmethod
    def from_record(cls, payload: bytes, meta: Mapping[str, Any]) -> Self:
        obj = cls.__new__(cls)
        obj._payload = bytes(payload)
        obj._format = str(meta_field(meta, "format", cls.AIM_NAME))
        obj._caption = str(meta.get("caption", ""))
        rate = meta.get("rate")
        obj._rate = None if rate is None else int(rate)
        return obj

    # --------------------------------------------------------------- accessors

    @property
    def rate(self) -> int | None:
        """Samples per second: given, read from a WAV header, or ``None`` when unknown."""
        return self._rate

    @property
    def data(self) -> bytes:
        return self._payload

    def get(self) -> io.BytesIO:
        """A fresh ``BytesIO`` over the exact stored bytes."""
        return io.BytesIO(self._payload)

    def to_numpy(self) -> tuple[int, np.ndarray[Any, Any]]:
        """``(rate, samples)`` of a WAV clip; samples are (n,) for mono, else (n, channels)."""
        if self._format != "wav":
            raise InvalidObjectError(
                f"to_numpy() decodes WAV only; this clip is {self._format}. Use get() for its bytes"
            )
        return decode_wav(self._payload)

    def json(self) -> dict[str, Any]:
        return {"caption": self._caption, "format": self._format, "rate": self._rate}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Audio):
            return NotImplemented
        return (
            self._payload == other._payload
            and self._format == other._format
            and self._caption == other._caption
        )

    def __repr__(self) -> str:
        return (
            f"Audio(format={self._format!r}, rate={self._rate}, bytes={len(self._payload)}, "
            f"caption={self._caption!r})"
        )


# --------------------------------------------------------------------------- formats


def _normalize_format(fmt: Any) -> str | None:
    if fmt is None:
        return None
    if not isinstance(fmt, str):
        raise UnsupportedValueError(f"audio format must be a str, not {type(fmt).__name__}")
    key = fmt.strip().lower().lstrip(".")
    if not key:
        return None
    if key not in FORMATS:
        raise InvalidObjectError(
            f"unsupported audio format {fmt!r}; use one of: {', '.join(FORMATS)}"
        )
    return key


def _format_from_name(name: str) -> str | None:
    suffix = Path(name).suffix.lower().lstrip(".")
    return suffix if suffix in FORMATS else None


def _sniff_format(payload: bytes) -> str | None:
    if payload[:4] == b"RIFF" and payload[8:12] == b"WAVE":
        return "wav"
    if payload[:4] == b"fLaC":
        return "flac"
    if payload[:3] == b"ID3":
        return "mp3"
    if len(payload) >= 2 and payload[0] == 0xFF and (payload[1] & 0xE6) == 0xE2:
        return "mp3"  # MPEG frame sync with layer III
    return None


# --------------------------------------------------------------------------- WAV


def encode_wav(array: np.ndarray[Any, Any], rate: int) -> bytes:
    """16-bit PCM WAV bytes of ``array``: (n,) mono, (n, channels) or (channels, n).

    Floats are taken to be in [-1, 1] (clipped; NaN becomes silence); 8-bit integers are scaled up
    the usual PCM way; other integers are clipped to the int16 range.
    """
    import wave

    if array.dtype.kind not in "iuf":
        raise UnsupportedValueError(f"audio samples must be numbers, got dtype {array.dtype}")
    if array.ndim == 1:
        frames = array[:, None]
    elif array.ndim == 2 and array.shape[1] <= MAX_CHANNELS:
        frames = array
    elif array.ndim == 2 and array.shape[0] <= MAX_CHANNELS:
        frames = array.T  # (channels, n), as torchaudio orders it
    else:
        raise InvalidObjectError(
            f"audio array has shape {array.shape}; expected (n,), (n, channels) or (channels, n) "
            f"with at most {MAX_CHANNELS} channels"
        )
    pcm = _to_int16(frames)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(pcm.shape[1])
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(pcm.astype("<i2").tobytes())
    return buffer.getvalue()


def _to_int16(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    kind = array.dtype.kind
    if kind == "f":
        clean = np.nan_to_num(array.astype(np.float64), nan=0.0, posinf=1.0, neginf=-1.0)
        np.clip(clean, -1.0, 1.0, out=clean)
        clean *= 32767.0
        pcm: np.ndarray[Any, Any] = np.rint(clean).astype(np.int16)
        return pcm
    if array.dtype == np.int16:
        return array
    if array.dtype == np.uint8:
        return (array.astype(np.int16) - 128) << 8
    if array.dtype == np.int8:
        return array.astype(np.int16) << 8
    info = np.iinfo(array.dtype)
    if info.min < -32768:
        array = np.maximum(array, -32768)
    if info.max > 32767:
        array = np.minimum(array, 32767)
    return array.astype(np.int16)


def decode_wav(payload: bytes) -> tuple[int, np.ndarray[Any, Any]]:
    """``(rate, samples)`` of PCM WAV bytes (8, 16, 24 or 32 bit)."""
    import wave

    try:
        with wave.open(io.BytesIO(payload), "rb") as reader:
            channels = reader.getnchannels()
            width = reader.getsampwidth()
            rate = reader.getframerate()
            raw = reader.readframes(reader.getnframes())
    except (wave.Error, EOFError) as exc:
        raise InvalidObjectError(f"stored WAV clip cannot be decoded: {exc}") from exc
    if width == 3:
        triples = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        samples = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
        samples = np.where(samples >= 1 << 23, samples - (1 << 24), samples).astype(np.int32)
    else:
        samples = np.frombuffer(raw, dtype=_PCM_DTYPES[width]).copy()
    if channels > 1:
        samples = samples.reshape(-1, channels)
    return rate, samples


def _wav_rate(payload: bytes) -> int | None:
    import wave

    try:
        with wave.open(io.BytesIO(payload), "rb") as reader:
            return int(reader.getframerate())
    except (wave.Error, EOFError):
        return None
