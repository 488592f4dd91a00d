"""``Image``: a picture encoded once (PNG by default) when it is created.

Accepted inputs: a PIL image; a numpy array (H, W) or (H, W, C) with C in 1-4, or (C, H, W) when
the first axis is 1/3/4 and the last is not; anything tensor-like (``.numpy()`` or ``__array__``,
detached and moved to the CPU first when it can be); a ``str``/``PathLike`` file path; a
matplotlib-like figure (anything with ``savefig``). uint8 is kept as is, floats are taken to be in
[0, 1] (scaled by 255, rounded, clipped; NaN becomes 0), other integers are clipped to 0..255.

Pillow is imported when an image is created or decoded, never at import time.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
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

__all__ = ["Image"]

# Our format name -> Pillow's writer name.
_FORMATS = {
    "png": "PNG",
    "jpeg": "JPEG",
    "gif": "GIF",
    "webp": "WEBP",
    "bmp": "BMP",
    "tiff": "TIFF",
}
_ALIASES = {"jpg": "jpeg", "tif": "tiff", "mpo": "jpeg"}
_JPEG_MODES = frozenset({"1", "L", "RGB", "CMYK"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_ANIMATED_FORMATS = frozenset({"png", "gif", "webp", "tiff"})
_QUALITY_FORMATS = frozenset({"jpeg", "webp"})
_PNG_KEPT_MODES = frozenset({"1", "L", "LA", "I;16", "P", "RGB", "RGBA"})  # PNG stores these as is

# (payload, format, width, height, mode)
_Encoded = tuple[bytes, str, int, int, str]


def normalize_format(fmt: Any) -> str | None:
    """``'JPG'`` -> ``'jpeg'``; ``None``/``''`` -> ``None``; unknown names raise ``ValueError``."""
    if fmt is None:
        return None
    if not isinstance(fmt, str):
        raise UnsupportedValueError(f"image format must be a str, not {type(fmt).__name__}")
    key = fmt.strip().lower().lstrip(".")
    if not key:
        return None
    key = _ALIASES.get(key, key)
    if key not in _FORMATS:
        raise InvalidObjectError(
            f"unsupported image format {fmt!r}; use one of: {', '.join(_FORMATS)} ('jpg' = 'jpeg')"
        )
    return key


class Image(CaptionedObject):
    """An image, stored as its encoded bytes plus caption, format, width, height and mode."""

    AIM_NAME = "aim.image"

    _payload: bytes
    _caption: str
    _format: str
    _width: int
    _height: int
    _mode: str

    def __init__(
        self,
        image: Any,
        caption: str = "",
        format: str | None = None,
        quality: int | np.integer[Any] = 90,
        optimize: bool = False,
    ) -> None:
        self._caption = caption_text(caption)
        fmt = normalize_format(format)
        if isinstance(quality, bool) or not isinstance(quality, int | np.integer):
            raise UnsupportedValueError(f"quality must be an int, not {type(quality).__name__}")
        if not 0 <= quality <= 100:
            raise InvalidObjectError(f"quality must be between 0 and 100, got {quality}")
        encoded = _encode(image, fmt, int(quality), bool(optimize))
        self._payload, self._format, self._width, self._height, self._mode = encoded

    # ------------------------------------------------------------------ record

    def to_record(self) -> ObjectRecord:
        return ObjectRecord(
            payload=self._payload,
            meta={
                "caption": self._caption,
                "format": self._format,
                "width": self._width,
                "height": self._height,
                "mode": self._mode,
            },
        )

    @classmethod
    def from_record(cls, payload: bytes, meta: Mapping[str, Any]) -> Self:
        obj = cls.__new__(cls)
        obj._payload = bytes(payload)
        obj._caption = str(meta.get("caption", ""))
        obj._format = str(meta_field(meta, "format", cls.AIM_NAME))
        obj._width = int(meta_field(meta, "width", cls.AIM_NAME))
        obj._height = int(meta_field(meta, "height", cls.AIM_NAME))
        obj._mode = str(meta.get("mode", ""))
        return obj

    # --------------------------------------------------------------- accessors

    @property
    def width(self) -> int:
        return self._width

    @property
    def height(self) -> int:
        return self._height

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)``, as Pillow orders it."""
        return self._width, self._height

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def data(self) -> bytes:
        """The encoded image bytes."""
        return self._payload

    def to_pil_image(self) -> Any:
        """A fresh, fully decoded ``PIL.Image.Image``."""
        from PIL import Image as PILImage

        try:
            img = PILImage.open(io.BytesIO(self._payload))
            img.load()
        except OSError as exc:
            raise InvalidObjectError(
                f"stored {self._format} image cannot be decoded: {exc}"
            ) from exc
        return img

    def json(self) -> dict[str, Any]:
        return {
            "caption": self._caption,
            "format": self._format,
            "width": self._width,
            "height": self._height,
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Image):
            return NotImplemented
        return self._payload == other._payload and self._caption == other._caption

    def __repr__(self) -> str:
        return (
            f"Image(format={self._format!r}, width={self._width}, height={self._height}, "
            f"mode={self._mode!r}, caption={self._caption!r})"
        )


# --------------------------------------------------------------------------- encoding


def _encode(image: Any, fmt: str | None, quality: int, optimize: bool) -> _Encoded:
    from PIL import Image as PILImage

    if isinstance(image, PILImage.Image):
        return _save(image, fmt or _own_format(image), quality, optimize)
    if isinstance(image, str | os.PathLike):
        return _from_file(image, fmt, quality, optimize)
    array = as_ndarray(image)
    if array is not None:
        return _save(PILImage.fromarray(_image_array(array)), fmt or "png", quality, optimize)
    if callable(getattr(image, "savefig", None)):
        return _from_figure(image, fmt, quality, optimize)
    raise UnsupportedValueError(
        f"Image cannot be made from {type(image).__name__}; pass a PIL image, a numpy array or "
        "tensor (HW, HWC or CHW), a file path, or a matplotlib figure"
    )


def _own_format(img: Any) -> str:
    own = str(img.format or "").lower()
    own = _ALIASES.get(own, own)
    return own if own in _FORMATS else "png"


def _image_array(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """A uint8 (H, W) or (H, W, C) array Pillow can take, or a clear error."""
    if array.dtype.kind not in "biuf":
        raise UnsupportedValueError(f"image array dtype {array.dtype} is not a number type")
    shape = array.shape
    if array.ndim == 3:
        if shape[0] in (1, 3, 4) and shape[2] not in (1, 3, 4):
            array = array.transpose(1, 2, 0)  # CHW -> HWC
        channels = array.shape[2]
        if channels == 1:
            array = array[:, :, 0]
        elif channels not in (2, 3, 4):
            raise InvalidObjectError(
                f"image array has shape {shape}: a 3-D image needs 1, 3 or 4 channels, "
                "as (H, W, C) or (C, H, W)"
            )
    elif array.ndim != 2:
        hint = "; for a batch, track a list: [Image(x) for x in batch]" if array.ndim == 4 else ""
        raise InvalidObjectError(
            f"image array has shape {shape}; expected (H, W), (H, W, C) or (C, H, W){hint}"
        )
    if array.size == 0:
        raise InvalidObjectError(f"image array has shape {shape}, which holds no pixels")
    return _to_uint8(array)


def _to_uint8(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    if array.dtype == np.uint8:
        return array
    kind = array.dtype.kind
    if kind == "b":
        return array.astype(np.uint8) * np.uint8(255)
    if kind == "f":
        work = np.float64 if array.dtype.itemsize >= 8 else np.float32
        scaled = np.multiply(array, 255.0, dtype=work)
        np.rint(scaled, out=scaled)
        np.clip(scaled, 0.0, 255.0, out=scaled)
        np.nan_to_num(scaled, copy=False, nan=0.0)
        pixels: np.ndarray[Any, Any] = scaled.astype(np.uint8)
        return pixels
    info = np.iinfo(array.dtype)
    if info.min < 0:
        array = np.maximum(array, 0)
    if info.max > 255:
        array = np.minimum(array, 255)
    return array.astype(np.uint8)


def _flatten(img: Any) -> Any:
    """An RGB copy of ``img``; transparent pixels become white."""
    from PIL import Image as PILImage

    has_alpha = img.mode in _ALPHA_MODES or (img.mode == "P" and "transparency" in img.info)
    if not has_alpha:
        return img.convert("RGB")
    rgba = img.convert("RGBA")
    background = PILImage.new("RGB", rgba.size, (255, 255, 255))
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def _save(img: Any, fmt: str, quality: int, optimize: bool) -> _Encoded:
    if fmt == "jpeg" and img.mode not in _JPEG_MODES:
        img = _flatten(img)
    params: dict[str, Any] = {}
    if fmt in _QUALITY_FORMATS:
        params["quality"] = quality
    if optimize:
        params["optimize"] = True
    if fmt in _ANIMATED_FORMATS and getattr(img, "is_animated", False):
        params["save_all"] = True
    buffer = io.BytesIO()
    try:
        img.save(buffer, format=_FORMATS[fmt], **params)
    except (OSError, ValueError):
        # A mode this format cannot hold: flatten on white and try once more, as Aim does.
        img = _flatten(img)
        params.pop("save_all", None)
        buffer = io.BytesIO()
        try:
            img.save(buffer, format=_FORMATS[fmt], **params)
        except (OSError, ValueError, KeyError) as exc:
            raise InvalidObjectError(
                f"cannot encode a {img.mode} image as {fmt}: {exc}; try format='png'"
            ) from exc
    payload = buffer.getvalue()
    mode = str(img.mode)
    if fmt != "png" or mode not in _PNG_KEPT_MODES:
        # The writer may have converted the mode (GIF -> P, JPEG 1 -> L): report what is stored.
        from PIL import Image as PILImage

        mode = str(PILImage.open(io.BytesIO(payload)).mode)
    return payload, fmt, int(img.width), int(img.height), mode


def _from_file(
    path: str | os.PathLike[str], fmt: str | None, quality: int, optimize: bool
) -> _Encoded:
    """A file already in the target format is kept byte for byte (no re-compression)."""
    from PIL import Image as PILImage

    data = read_input_file(path, "Image")
    try:
        img = PILImage.open(io.BytesIO(data))
    except OSError as exc:
        raise InvalidObjectError(
            f"Image: {os.fspath(path)!r} is not an image file Pillow can read ({exc})"
        ) from exc
    target = fmt or _own_format(img)
    if str(img.format or "").lower() == target:
        return data, target, int(img.width), int(img.height), str(img.mode)
    try:
        img.load()
    except OSError as exc:
        raise InvalidObjectError(f"Image: cannot decode {os.fspath(path)!r}: {exc}") from exc
    return _save(img, target, quality, optimize)


def _from_figure(figure: Any, fmt: str | None, quality: int, optimize: bool) -> _Encoded:
    """A matplotlib-like figure, rendered with ``savefig`` as PNG (kept as is when PNG is wanted)."""
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    data = buffer.getvalue()
    try:
        img = PILImage.open(io.BytesIO(data))
    except OSError as exc:
        raise InvalidObjectError(f"figure.savefig() did not produce a PNG image ({exc})") from exc
    target = fmt or "png"
    if target == "png" and img.format == "PNG":
        return data, "png", int(img.width), int(img.height), str(img.mode)
    img.load()
    return _save(img, target, quality, optimize)
