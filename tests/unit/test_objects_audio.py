"""Audio: numpy -> 16-bit PCM WAV (checked with the stdlib wave reader), byte inputs kept exactly."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np
import pytest

from aim_parquet.errors import UnsupportedValueError
from aim_parquet.objects import Audio, InvalidObjectError, ObjectFileNotFoundError
from aim_parquet.objects.audio import DEFAULT_RATE

RNG = np.random.default_rng(7)
FAKE_MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(range(64))
FAKE_FLAC = b"fLaC" + bytes(range(64))


class FakeTensor:
    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def detach(self) -> FakeTensor:
        return self

    def cpu(self) -> FakeTensor:
        return self

    def numpy(self) -> np.ndarray:
        return self.array


def read_wav(payload: bytes) -> tuple[int, int, int, np.ndarray]:
    """(channels, sample width, rate, int16 frames as (n, channels)) read with the stdlib."""
    with wave.open(io.BytesIO(payload), "rb") as reader:
        channels = reader.getnchannels()
        width = reader.getsampwidth()
        rate = reader.getframerate()
        raw = reader.readframes(reader.getnframes())
    return channels, width, rate, np.frombuffer(raw, "<i2").reshape(-1, channels)


def make_wav(samples: np.ndarray, rate: int = 8000, width: int = 2, channels: int = 1) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(width)
        writer.setframerate(rate)
        writer.writeframes(samples.tobytes())
    return buffer.getvalue()


def round_trip(audio: Audio) -> Audio:
    record = audio.to_record()
    again = Audio.from_record(record.payload, record.meta)
    assert again == audio
    assert again.json() == audio.json()
    assert again.rate == audio.rate
    return again


# ----------------------------------------------------------------------------- numpy input


def test_float_mono_is_16_bit_pcm_wav() -> None:
    samples = RNG.uniform(-1, 1, size=1000)
    audio = Audio(samples, caption="tone")
    assert (audio.format, audio.rate, audio.caption) == ("wav", DEFAULT_RATE, "tone")
    assert DEFAULT_RATE == 22500
    channels, width, rate, frames = read_wav(audio.to_record().payload)
    assert (channels, width, rate) == (1, 2, 22500)
    np.testing.assert_array_equal(frames[:, 0], np.rint(samples * 32767).astype(np.int16))
    again = round_trip(audio)
    rate, decoded = again.to_numpy()
    assert rate == 22500
    np.testing.assert_array_equal(decoded, frames[:, 0])


def test_float_out_of_range_is_clipped_and_nan_is_silence() -> None:
    audio = Audio(np.array([2.0, -2.0, np.nan, np.inf, -np.inf, 0.5]))
    _, _, _, frames = read_wav(audio.to_record().payload)
    assert frames[:, 0].tolist() == [32767, -32767, 0, 32767, -32767, 16384]


def test_stereo_samples_by_channels() -> None:
    samples = RNG.integers(-32768, 32767, size=(300, 2), dtype=np.int16)
    audio = Audio(samples, rate=44100)
    channels, _, rate, frames = read_wav(audio.to_record().payload)
    assert (channels, rate, audio.rate) == (2, 44100, 44100)
    np.testing.assert_array_equal(frames, samples)
    np.testing.assert_array_equal(audio.to_numpy()[1], samples)


def test_channels_first_tensor_is_transposed() -> None:
    samples = RNG.integers(-32768, 32767, size=(2, 300), dtype=np.int16)
    audio = Audio(FakeTensor(samples))
    channels, _, _, frames = read_wav(audio.to_record().payload)
    assert channels == 2
    np.testing.assert_array_equal(frames, samples.T)


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        (np.array([0, 128, 255], dtype=np.uint8), [-32768, 0, 32512]),
        (np.array([-128, 0, 127], dtype=np.int8), [-32768, 0, 32512]),
        (np.array([-40000, 5, 40000], dtype=np.int64), [-32768, 5, 32767]),
        (np.array([5, 70000], dtype=np.uint32), [5, 32767]),
    ],
)
def test_integer_samples(samples: np.ndarray, expected: list[int]) -> None:
    _, _, _, frames = read_wav(Audio(samples).to_record().payload)
    assert frames[:, 0].tolist() == expected


def test_empty_array_is_an_empty_clip() -> None:
    audio = Audio(np.zeros(0))
    assert audio.to_numpy()[1].shape == (0,)


@pytest.mark.parametrize("fmt", ["wav", "WAV", ""])
def test_numpy_accepts_wav_or_no_format(fmt: str) -> None:
    assert Audio(np.zeros(4), format=fmt).format == "wav"


def test_numpy_refuses_other_formats() -> None:
    with pytest.raises(InvalidObjectError, match="encoded as WAV"):
        Audio(np.zeros(4), format="mp3")


@pytest.mark.parametrize(
    ("samples", "message"),
    [
        (np.zeros((2, 2, 2)), "expected \\(n,\\)"),
        (np.zeros((100, 100)), "at most 16 channels"),
    ],
)
def test_bad_array_shapes(samples: np.ndarray, message: str) -> None:
    with pytest.raises(InvalidObjectError, match=message):
        Audio(samples)


def test_non_numeric_arrays_are_refused() -> None:
    with pytest.raises(UnsupportedValueError, match="must be numbers"):
        Audio(np.array([1j]))
    with pytest.raises(UnsupportedValueError, match="must be numbers"):
        Audio(np.array([True]))


@pytest.mark.parametrize("rate", [0, -8000, True, 8000.0, "fast"])
def test_bad_rates(rate: object) -> None:
    with pytest.raises(InvalidObjectError, match="rate must be a positive int"):
        Audio(np.zeros(4), rate=rate)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- byte inputs


def test_bytes_are_kept_exactly() -> None:
    audio = Audio(FAKE_MP3, format="mp3", caption="song")
    record = audio.to_record()
    assert record.payload == FAKE_MP3
    assert record.meta == {"caption": "song", "format": "mp3", "rate": None}
    assert audio.get().read() == FAKE_MP3
    assert audio.get() is not audio.get()
    round_trip(audio)


def test_bytearray_and_memoryview() -> None:
    assert Audio(bytearray(FAKE_FLAC), "flac").to_record().payload == FAKE_FLAC
    assert Audio(memoryview(FAKE_FLAC), "flac").to_record().payload == FAKE_FLAC


def test_bytesio_whole_content_whatever_the_position() -> None:
    buffer = io.BytesIO()
    buffer.write(FAKE_MP3)  # position left at the end, a common slip
    assert Audio(buffer, format="mp3").to_record().payload == FAKE_MP3


def test_binary_file_object(tmp_path: Path) -> None:
    path = tmp_path / "clip.flac"
    path.write_bytes(FAKE_FLAC)
    with path.open("rb") as file:
        assert Audio(file, format="flac").to_record().payload == FAKE_FLAC
    with path.open("r", encoding="latin-1") as text_file:  # noqa: SIM117
        with pytest.raises(UnsupportedValueError, match="binary mode"):
            Audio(text_file, format="flac")


def test_format_is_recognised_from_content() -> None:
    assert Audio(FAKE_MP3).format == "mp3"
    assert Audio(FAKE_FLAC).format == "flac"
    assert Audio(b"\xff\xfb\x90\x00" + bytes(16)).format == "mp3"
    wav = make_wav(np.arange(10, dtype="<i2"), rate=16000)
    audio = Audio(wav)
    assert (audio.format, audio.rate) == ("wav", 16000)
    np.testing.assert_array_equal(audio.to_numpy()[1], np.arange(10))


def test_given_rate_wins_over_the_header() -> None:
    wav = make_wav(np.arange(10, dtype="<i2"), rate=16000)
    assert Audio(wav, format="wav", rate=8000).rate == 8000


def test_unknown_content_without_format_is_an_error() -> None:
    with pytest.raises(InvalidObjectError, match="could not be inferred; pass format="):
        Audio(b"OggS" + bytes(20))


@pytest.mark.parametrize("fmt", ["ogg", "mp4", "aac"])
def test_unsupported_formats(fmt: str) -> None:
    with pytest.raises(InvalidObjectError, match="mp3, wav, flac"):
        Audio(FAKE_MP3, format=fmt)


def test_format_must_be_a_str() -> None:
    with pytest.raises(UnsupportedValueError, match="format must be a str"):
        Audio(FAKE_MP3, format=3)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- paths


def test_path_format_from_extension(tmp_path: Path) -> None:
    path = tmp_path / "song.MP3"
    path.write_bytes(bytes(32))  # content says nothing; the name decides
    for source in (path, str(path)):
        audio = Audio(source)
        assert audio.format == "mp3"
        assert audio.to_record().payload == bytes(32)


def test_path_explicit_format_wins(tmp_path: Path) -> None:
    path = tmp_path / "song.mp3"
    path.write_bytes(FAKE_FLAC)
    assert Audio(path, format="flac").format == "flac"


def test_path_without_known_extension_is_sniffed(tmp_path: Path) -> None:
    path = tmp_path / "recording.bin"
    path.write_bytes(make_wav(np.zeros(4, "<i2"), rate=11025))
    audio = Audio(path)
    assert (audio.format, audio.rate) == ("wav", 11025)
    unknown = tmp_path / "noise.bin"
    unknown.write_bytes(bytes(16))
    with pytest.raises(InvalidObjectError, match="pass format="):
        Audio(unknown)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ObjectFileNotFoundError, match="missing.wav") as info:
        Audio(tmp_path / "missing.wav")
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, FileNotFoundError)


@pytest.mark.parametrize("value", [[0.0, 0.1], 3, None, {"a": 1}])
def test_unsupported_inputs(value: object) -> None:
    with pytest.raises(UnsupportedValueError, match="Audio cannot be made from") as info:
        Audio(value, format="wav")
    assert isinstance(info.value, TypeError)


# ----------------------------------------------------------------------------- decoding


def test_to_numpy_decodes_8_24_and_32_bit_wav() -> None:
    eight = Audio(make_wav(np.array([0, 128, 255], np.uint8), width=1))
    assert eight.to_numpy()[1].tolist() == [0, 128, 255]

    values = np.array([-(1 << 23), -1, 0, 1, (1 << 23) - 1])
    packed = b"".join(int(v).to_bytes(3, "little", signed=True) for v in values)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(3)
        writer.setframerate(8000)
        writer.writeframes(packed)
    assert Audio(buffer).to_numpy()[1].tolist() == values.tolist()

    thirty_two = np.array([[-(1 << 31), (1 << 31) - 1]], dtype="<i4")
    rate, decoded = Audio(make_wav(thirty_two, width=4, channels=2)).to_numpy()
    assert rate == 8000
    np.testing.assert_array_equal(decoded, thirty_two)


def test_to_numpy_only_for_wav() -> None:
    with pytest.raises(InvalidObjectError, match="decodes WAV only"):
        Audio(FAKE_MP3, "mp3").to_numpy()


def test_to_numpy_of_a_broken_wav() -> None:
    broken = Audio(b"RIFF\x00\x00\x00\x00WAVEjunk", format="wav")
    assert broken.rate is None
    with pytest.raises(InvalidObjectError, match="cannot be decoded"):
        broken.to_numpy()


# ----------------------------------------------------------------------------- accessors


def test_caption_equality_and_repr() -> None:
    audio = Audio(FAKE_MP3, "mp3", caption="a")
    assert audio != Audio(FAKE_MP3, "mp3", caption="b")
    assert audio != Audio(FAKE_MP3, "flac", caption="a")
    assert audio != FAKE_MP3
    audio.caption = "b"
    assert audio == Audio(FAKE_MP3, "mp3", caption="b")
    assert audio.json() == {"caption": "b", "format": "mp3", "rate": None}
    assert repr(audio) == f"Audio(format='mp3', rate=None, bytes={len(FAKE_MP3)}, caption='b')"


def test_from_record_needs_a_format() -> None:
    with pytest.raises(InvalidObjectError, match="'format'"):
        Audio.from_record(b"", {"caption": ""})
