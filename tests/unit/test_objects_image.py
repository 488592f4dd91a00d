"""Image: every input form round-trips through to_record/from_record; bad input fails clearly."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage

from aim_parquet.errors import AimParquetError, UnsupportedValueError
from aim_parquet.objects import Image, InvalidObjectError, ObjectFileNotFoundError

RNG = np.random.default_rng(1234)


def rgb(height: int = 8, width: int = 6) -> np.ndarray:
    return RNG.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def round_trip(image: Image) -> Image:
    record = image.to_record()
    again = Image.from_record(record.payload, record.meta)
    assert again == image
    assert again.json() == image.json()
    return again


def pixels(image: Image) -> np.ndarray:
    return np.asarray(round_trip(image).to_pil_image())


class FakeTensor:
    """Quacks like a torch tensor (CHW), without importing torch."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.calls: list[str] = []

    def detach(self) -> FakeTensor:
        self.calls.append("detach")
        return self

    def cpu(self) -> FakeTensor:
        self.calls.append("cpu")
        return self

    def numpy(self) -> np.ndarray:
        return self.array


class ArrayLike:
    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        return self.array


class FakeFigure:
    """Quacks like a matplotlib figure: savefig(file, format='png')."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def savefig(self, file: Any, format: str = "png") -> None:
        PILImage.fromarray(self.array).save(file, format.upper())


# ----------------------------------------------------------------------------- input forms


def test_pil_image_round_trip() -> None:
    array = rgb()
    image = Image(PILImage.fromarray(array), caption="a cat")
    record = image.to_record()
    assert record.meta == {
        "caption": "a cat",
        "format": "png",
        "width": 6,
        "height": 8,
        "mode": "RGB",
    }
    assert record.payload.startswith(b"\x89PNG")
    assert image.json() == {"caption": "a cat", "format": "png", "width": 6, "height": 8}
    assert image.size == (6, 8)
    np.testing.assert_array_equal(pixels(image), array)


def test_numpy_hw_is_grayscale() -> None:
    array = RNG.integers(0, 256, size=(5, 7), dtype=np.uint8)
    image = Image(array)
    assert (image.mode, image.width, image.height) == ("L", 7, 5)
    np.testing.assert_array_equal(pixels(image), array)


@pytest.mark.parametrize(("channels", "mode"), [(1, "L"), (2, "LA"), (3, "RGB"), (4, "RGBA")])
def test_numpy_hwc_channels(channels: int, mode: str) -> None:
    array = RNG.integers(0, 256, size=(6, 5, channels), dtype=np.uint8)
    image = Image(array)
    assert image.mode == mode
    expected = array[:, :, 0] if channels == 1 else array
    np.testing.assert_array_equal(pixels(image), expected)


def test_float_arrays_are_scaled_from_unit_range() -> None:
    ints = RNG.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
    for dtype in (np.float64, np.float32, np.float16):
        image = Image((ints / 255).astype(dtype))
        np.testing.assert_array_equal(pixels(image), ints)  # rounded, not truncated


def test_float_arrays_are_clipped_and_nan_is_black() -> None:
    array = np.array([[-0.5, 0.5, 2.0], [np.nan, np.inf, -np.inf]])
    np.testing.assert_array_equal(pixels(Image(array)), [[0, 128, 255], [0, 255, 0]])


def test_other_integer_dtypes_are_clipped() -> None:
    array = np.array([[-5, 0, 100], [255, 256, 70000]], dtype=np.int64)
    np.testing.assert_array_equal(pixels(Image(array)), [[0, 0, 100], [255, 255, 255]])
    np.testing.assert_array_equal(pixels(Image(np.array([[-1, 7]], dtype=np.int8))), [[0, 7]])
    np.testing.assert_array_equal(pixels(Image(np.array([[3, 999]], dtype=np.uint16))), [[3, 255]])


def test_bool_arrays_are_black_and_white() -> None:
    np.testing.assert_array_equal(pixels(Image(np.array([[True, False]]))), [[255, 0]])


def test_chw_tensor_is_transposed() -> None:
    hwc = rgb(5, 7)
    tensor = FakeTensor(np.ascontiguousarray(hwc.transpose(2, 0, 1)))
    image = Image(tensor)
    assert tensor.calls == ["detach", "cpu"]
    assert (image.width, image.height, image.mode) == (7, 5, "RGB")
    np.testing.assert_array_equal(pixels(image), hwc)


def test_chw_float_tensor_is_scaled() -> None:
    hwc = rgb(4, 9)
    image = Image(FakeTensor((hwc / 255).astype(np.float32).transpose(2, 0, 1)))
    np.testing.assert_array_equal(pixels(image), hwc)


def test_single_channel_chw_is_grayscale() -> None:
    gray = RNG.integers(0, 256, size=(6, 10), dtype=np.uint8)
    image = Image(FakeTensor(gray[None]))
    assert image.mode == "L"
    np.testing.assert_array_equal(pixels(image), gray)


def test_array_like_objects_are_accepted() -> None:
    array = rgb()
    np.testing.assert_array_equal(pixels(Image(ArrayLike(array))), array)


def test_non_contiguous_array() -> None:
    array = rgb(10, 12)[::2, ::3]
    np.testing.assert_array_equal(pixels(Image(array)), array)


def test_png_path_is_stored_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "picture.png"
    PILImage.fromarray(rgb()).save(path, "PNG", compress_level=1)
    for source in (path, str(path)):
        image = Image(source, caption="from disk")
        assert image.format == "png"
        assert image.to_record().payload == path.read_bytes()
        assert (image.width, image.height) == (6, 8)
        round_trip(image)


def test_jpeg_path_keeps_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    PILImage.fromarray(rgb()).save(path, "JPEG")
    image = Image(path)
    assert image.format == "jpeg"
    assert image.to_record().payload == path.read_bytes()


def test_path_with_another_format_is_reencoded(tmp_path: Path) -> None:
    array = rgb()
    path = tmp_path / "picture.bmp"
    PILImage.fromarray(array).save(path, "BMP")
    image = Image(path, format="png")
    assert image.format == "png"
    assert image.to_record().payload.startswith(b"\x89PNG")
    np.testing.assert_array_equal(pixels(image), array)


def test_path_in_a_format_we_do_not_store_becomes_png(tmp_path: Path) -> None:
    path = tmp_path / "picture.tga"
    PILImage.fromarray(rgb()).save(path, "TGA")
    assert Image(path).format == "png"


def test_missing_path_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.png"
    with pytest.raises(ObjectFileNotFoundError, match="nope.png") as info:
        Image(missing)
    assert isinstance(info.value, ValueError)  # what Aim raises
    assert isinstance(info.value, FileNotFoundError)


def test_path_that_is_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(InvalidObjectError, match="notes.txt"):
        Image(path)
    with pytest.raises(InvalidObjectError, match="cannot read"):
        Image(tmp_path)  # a directory


def test_matplotlib_like_figure_is_rendered_as_png() -> None:
    array = rgb()
    image = Image(FakeFigure(array))
    assert image.format == "png"
    np.testing.assert_array_equal(pixels(image), array)
    as_jpeg = Image(FakeFigure(array), format="jpeg")
    assert as_jpeg.to_record().payload.startswith(b"\xff\xd8")


def test_real_matplotlib_figure() -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure as MplFigure

    figure = MplFigure(figsize=(2, 1), dpi=50)
    figure.add_subplot().plot([0, 1, 2], [2, 0, 1])
    image = Image(figure, caption="plot")
    assert (image.width, image.height) == (100, 50)
    round_trip(image)


def test_pil_image_keeps_its_own_format() -> None:
    buffer = io.BytesIO()
    PILImage.fromarray(rgb()).save(buffer, "JPEG")
    opened = PILImage.open(io.BytesIO(buffer.getvalue()))
    assert Image(opened).format == "jpeg"
    assert Image(opened, format="png").format == "png"


def test_animated_gif_keeps_its_frames() -> None:
    frames = [PILImage.fromarray(rgb()) for _ in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    image = Image(PILImage.open(io.BytesIO(buffer.getvalue())))
    assert image.format == "gif"
    assert round_trip(image).to_pil_image().n_frames == 3


# ----------------------------------------------------------------------------- formats


@pytest.mark.parametrize("name", ["jpeg", "jpg", "JPG", "Jpeg", ".jpg"])
def test_jpeg_names_are_normalised(name: str) -> None:
    image = Image(rgb(), format=name)
    assert image.format == "jpeg"
    record = image.to_record()
    assert record.payload.startswith(b"\xff\xd8")
    assert record.meta["format"] == "jpeg"
    round_trip(image)


@pytest.mark.parametrize("name", ["gif", "webp", "bmp", "tiff", "tif", "png", "PNG", None, ""])
def test_other_formats(name: str | None) -> None:
    image = Image(rgb(), format=name)
    assert image.to_pil_image().size == (6, 8)


@pytest.mark.parametrize("fmt", ["png", "jpeg", "gif", "webp", "bmp", "tiff"])
@pytest.mark.parametrize("mode", ["1", "L", "LA", "I", "I;16", "F", "P", "RGB", "RGBA", "CMYK"])
def test_every_mode_encodes_in_every_format(mode: str, fmt: str) -> None:
    source = PILImage.fromarray(rgb())
    if mode in ("1", "LA", "I", "I;16", "F"):
        source = source.convert("L")
    image = Image(source.convert(mode), format=fmt)
    decoded = round_trip(image).to_pil_image()
    assert image.mode == decoded.mode  # meta reports the stored mode, not the input's
    assert decoded.size == (6, 8)


def test_unknown_format_is_a_clear_error() -> None:
    with pytest.raises(InvalidObjectError, match=r"unsupported image format 'svg'.*png, jpeg"):
        Image(rgb(), format="svg")
    with pytest.raises(UnsupportedValueError, match="format must be a str"):
        Image(rgb(), format=3)  # type: ignore[arg-type]


def test_rgba_to_jpeg_is_flattened_on_white() -> None:
    array = np.zeros((8, 8, 4), np.uint8)
    array[:, :4] = (255, 0, 0, 255)  # opaque red; the right half is transparent black
    image = Image(array, format="jpeg")
    decoded = np.asarray(image.to_pil_image())
    assert image.mode == "RGB"
    assert decoded[:, 6:].min() > 240  # white, not black
    assert decoded[:, :2, 0].min() > 200 and decoded[:, :2, 1].max() < 60


def test_palette_with_transparency_to_jpeg() -> None:
    palette_image = PILImage.fromarray(rgb()).convert("P")
    palette_image.info["transparency"] = 0
    assert Image(palette_image, format="jpeg").mode == "RGB"


def test_quality_and_optimize() -> None:
    array = RNG.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    small = Image(array, format="jpeg", quality=10).to_record().payload
    large = Image(array, format="jpeg", quality=95).to_record().payload
    assert len(small) < len(large)
    assert Image(array, optimize=True).to_pil_image().size == (64, 64)


@pytest.mark.parametrize("quality", [-1, 101])
def test_quality_out_of_range(quality: int) -> None:
    with pytest.raises(InvalidObjectError, match="quality"):
        Image(rgb(), quality=quality)


def test_quality_of_wrong_type() -> None:
    with pytest.raises(UnsupportedValueError, match="quality"):
        Image(rgb(), quality="high")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((8, 8, 5), r"needs 1, 3 or 4 channels"),
        ((5, 8, 8), r"needs 1, 3 or 4 channels"),
        ((2, 4, 4, 3), r"for a batch, track a list"),
        ((10,), r"expected \(H, W\)"),
        ((0, 4), r"holds no pixels"),
        ((4, 0, 3), r"holds no pixels"),
    ],
)
def test_bad_shapes(shape: tuple[int, ...], message: str) -> None:
    with pytest.raises(InvalidObjectError, match=message) as info:
        Image(np.zeros(shape, np.uint8))
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, AimParquetError)


@pytest.mark.parametrize(
    "value",
    [{"a": 1}, b"\x89PNG", 3, None, [[1, 2], [3, 4]], np.array([["a"]]), np.ones((2, 2), complex)],
)
def test_bad_types(value: object) -> None:
    with pytest.raises(UnsupportedValueError) as info:
        Image(value)
    assert isinstance(info.value, TypeError)


# ----------------------------------------------------------------------------- accessors


def test_caption_get_set_and_coercion() -> None:
    image = Image(rgb(), caption=3)  # type: ignore[arg-type]
    assert image.caption == "3"
    image.caption = "dog"
    assert image.caption == "dog"
    assert image.to_record().meta["caption"] == "dog"
    with pytest.raises(UnsupportedValueError):
        image.caption = object()  # type: ignore[assignment]


def test_equality_compares_payload_and_caption() -> None:
    array = rgb()
    assert Image(array, "a") == Image(array, "a")
    assert Image(array, "a") != Image(array, "b")
    assert Image(array) != Image(255 - array)
    assert Image(array) != "image"


def test_repr() -> None:
    assert repr(Image(rgb(), "x")) == (
        "Image(format='png', width=6, height=8, mode='RGB', caption='x')"
    )


def test_from_record_does_not_decode() -> None:
    meta = {"caption": "", "format": "png", "width": 1, "height": 1, "mode": "L"}
    lazy = Image.from_record(b"not an image", meta)
    assert lazy.size == (1, 1)
    with pytest.raises(InvalidObjectError, match="cannot be decoded"):
        lazy.to_pil_image()


def test_from_record_with_missing_meta() -> None:
    with pytest.raises(InvalidObjectError, match="'width'"):
        Image.from_record(b"", {"format": "png", "height": 1})


def test_to_pil_image_returns_a_fresh_copy() -> None:
    array = np.zeros((4, 4, 3), np.uint8)
    image = Image(array)
    first = image.to_pil_image()
    first.putpixel((0, 0), (9, 9, 9))
    np.testing.assert_array_equal(np.asarray(image.to_pil_image()), array)
