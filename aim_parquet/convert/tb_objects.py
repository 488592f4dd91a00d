"""TensorBoard summary values -> aim_parquet objects (Distribution, Image, Audio, Text, params).

Histograms: TensorBoard's own reading of a `HistogramProto` gives bucket i the edges
(left_i, right_i) = ([min] + bucket_limit[:-1], bucket_limit[:-1] + [max]) and TF2 histograms
are `[k, 3]` tensors of (left, right, count). When the buckets have equal widths (numpy-style
bins, TF2) the `Distribution` holds exactly those counts over [first left, last right]. Otherwise
(TF1's exponential default buckets) the counts are spread over `REBIN_COUNT` equal-width bins
spanning [min, max] in proportion to each bucket's overlap, the same kind of re-binning
TensorBoard's histogram dashboard does; the total count is kept.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from aim_parquet.convert.sink import CountingSink
from aim_parquet.convert.tb_proto import decode_audio, decode_histogram, decode_image
from aim_parquet.convert.tb_tensor import decode_hparams, decode_tensor
from aim_parquet.objects import Audio, Distribution, Image, Text

REBIN_COUNT = 64
EQUAL_WIDTH_RTOL = 1e-6
_AUDIO_TYPES = {"audio/wav": "wav", "audio/x-wav": "wav", "audio/mpeg": "mp3", "audio/flac": "flac"}


class ObjectMaker:
    """Decodes non-scalar summary values for one run; collects its hparams."""

    def __init__(self, sink: CountingSink) -> None:
        self.sink = sink
        self.hparams_values: dict[str, Any] = {}

    # -- TF1 messages -------------------------------------------------------------------------
    def from_message(self, buf: bytes, where: tuple[int, int], kind: str) -> Any:
        if kind == "histo":
            h = decode_histogram(buf, where)
            if not h.bucket:
                raise ValueError("empty histogram")
            lefts = [h.min, *h.bucket_limit[:-1]]
            rights = [*h.bucket_limit[:-1], h.max]
            return histogram_distribution(np.array(lefts), np.array(rights), np.array(h.bucket))
        if kind == "image":
            return encoded_image(decode_image(buf, where).encoded)
        audio = decode_audio(buf, where)
        return encoded_audio(audio.encoded, audio.content_type, audio.sample_rate)

    # -- TF2 tensors ---------------------------------------------------------------------------
    def from_tensor(self, buf: bytes, where: tuple[int, int], tag: str, plugin: str) -> Any:
        """A number (scalars), an object or list of objects, or None (skipped, reported)."""
        tensor = decode_tensor(buf, where)
        if plugin in ("scalars", ""):
            if tensor.array is not None and tensor.size == 1:
                number = tensor.array.reshape(()).item()
                return int(number) if isinstance(number, bool) else number
            if plugin == "" and tensor.array is None and tensor.strings:
                return _texts(tensor.strings, tensor.shape)
            self.sink.skip(f"{tag}: a tensor summary of shape {list(tensor.shape)} (not converted)")
            return None
        if plugin == "histograms" and tensor.array is not None:
            array = np.asarray(tensor.array, dtype=np.float64).reshape(-1, 3)
            if len(array) == 0:
                raise ValueError("empty histogram")
            return histogram_distribution(array[:, 0], array[:, 1], array[:, 2])
        if plugin == "images":
            encoded = tensor.strings[2:]  # [width, height, image, image, ...]
            images = [encoded_image(data) for data in encoded]
            return images[0] if len(images) == 1 else images
        if plugin == "audio":
            clips = tensor.strings
            labels: list[bytes] = []
            if len(tensor.shape) == 2 and tensor.shape[1] == 2:
                clips, labels = tensor.strings[0::2], tensor.strings[1::2]
            audios = [
                encoded_audio(
                    data, "", None, labels[i].decode("utf-8", "replace") if labels else ""
                )
                for i, data in enumerate(clips)
            ]
            return audios[0] if len(audios) == 1 else audios
        if plugin == "text":
            return _texts(tensor.strings, tensor.shape)
        self.sink.skip(f"{tag}: plugin {plugin!r} has no aim_parquet equivalent (not converted)")
        return None

    # -- hparams -------------------------------------------------------------------------------
    def hparams(self, tag: str, content: bytes | None, into: dict[str, Any]) -> None:
        if not content:
            return
        data = decode_hparams(content)
        self.hparams_values.update(data.hparams)
        if data.group_name:
            into["hparams_group"] = data.group_name
        if data.status is not None:
            into["session_status"] = data.status


def histogram_distribution(
    lefts: np.ndarray[Any, Any], rights: np.ndarray[Any, Any], counts: np.ndarray[Any, Any]
) -> Distribution:
    lefts = lefts.astype(np.float64)
    rights = rights.astype(np.float64)
    counts = counts.astype(np.float64)
    low, high = float(lefts.min()), float(rights.max())
    if not low < high:  # all samples equal: one unit-wide bin around them, as numpy does
        return Distribution(hist=[float(counts.sum())], bin_range=(low - 0.5, low + 0.5))
    widths = rights - lefts
    span = high - low
    if len(counts) > 1 and np.allclose(widths, widths[0], rtol=EQUAL_WIDTH_RTOL, atol=span * 1e-12):
        return Distribution(hist=counts, bin_range=(float(lefts[0]), float(rights[-1])))
    edges = np.linspace(low, high, REBIN_COUNT + 1)
    weights = np.zeros(REBIN_COUNT)
    for left, right, count in zip(lefts, rights, counts, strict=True):
        if count == 0:
            continue
        if right <= left:  # a zero-width bucket: all of it in the bin holding it
            index = min(int(np.searchsorted(edges, left, side="right")) - 1, REBIN_COUNT - 1)
            weights[max(index, 0)] += count
            continue
        overlap = np.clip(np.minimum(edges[1:], right) - np.maximum(edges[:-1], left), 0, None)
        weights += count * overlap / (right - left)
    return Distribution(hist=weights, bin_range=(low, high))


def encoded_image(data: bytes) -> Image:
    """An Image holding the encoded bytes as they are (no re-encoding)."""
    from PIL import Image as PILImage

    with PILImage.open(io.BytesIO(data)) as img:
        fmt = str(img.format or "png").lower()
        meta = {"caption": "", "format": fmt, "width": img.width, "height": img.height}
        meta["mode"] = str(img.mode)
    if fmt not in ("png", "jpeg", "gif", "webp", "bmp", "tiff"):
        raise ValueError(f"image format {fmt!r} is not one aim_parquet stores")
    return Image.from_record(data, meta)


def encoded_audio(data: bytes, content_type: str, rate: float | None, caption: str = "") -> Audio:
    fmt = _AUDIO_TYPES.get(content_type.lower(), "")
    rounded = int(round(rate)) if rate and rate > 0 else None
    return Audio(data, format=fmt, caption=caption, rate=rounded)


def _texts(strings: list[bytes], shape: tuple[int, ...]) -> Any:
    texts = [s.decode("utf-8", "replace") for s in strings]
    if len(shape) <= 1:
        items = [Text(t) for t in texts]
        return items[0] if len(items) == 1 else items
    # a table: one Text, rows of tab-separated cells (TensorBoard renders it as a table)
    width = shape[-1]
    rows = ["\t".join(texts[i : i + width]) for i in range(0, len(texts), width)]
    return Text("\n".join(rows))
