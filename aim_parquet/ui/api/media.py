"""`/api/objects/HASH/SEQ/STEP/INDEX`: one stored object, read through the object reader.

    GET /api/objects/HASH/SEQ/STEP/INDEX              the object: an image's or audio clip's own
                                                      bytes, a figure's Plotly JSON, a text,
                                                      a distribution as JSON
    GET /api/objects/HASH/SEQ/STEP/INDEX?size=PX      an image as a thumbnail of at most PX
                                                      pixels a side (made here, with Pillow)

Only that one row's bytes are read (`storage.online.object_read`). Every answer has an ETag; for a run
that has finished, the object at an address never changes unless the run is resumed, so its
answers are `immutable` for a year when the URL carries the run's version (`v`, which the
listings give: it changes when the run is resumed) and revalidated (`no-cache`) otherwise.
Thumbnails, and the objects of the steps last shown, are kept in small in-memory caches. All of
this runs in a pool of its own (`MediaPool`), so a page of slow images never takes a thread from the
metrics and runs requests.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aim_parquet.errors import MissingRunError
from aim_parquet.format.kinds import (
    AUDIO_KIND,
    DISTRIBUTION_KIND,
    FIGURE_KIND,
    IMAGE_KIND,
    element_kind,
)
from aim_parquet.format.meta import SequenceInfo
from aim_parquet.format.paths import is_valid_seq_id, validate_run_hash
from aim_parquet.storage.base.columns import to_numpy
from aim_parquet.storage.online.catalogue_scan import uncatalogued_sequences
from aim_parquet.storage.online.object_read import read_object_rows
from aim_parquet.ui.api.errors import BadRequest, api_errors
from aim_parquet.ui.api.jsonout import error_response, json_bytes
from aim_parquet.ui.api.objects import find_record, parse_meta, version_of, whole
from aim_parquet.ui.api.state import UiState

T = TypeVar("T")
THUMB_SIZES = (64, 96, 128, 160, 192, 256, 320, 384, 512, 768, 1024)
"""A requested thumbnail size is rounded up to one of these (so the cache is shared)."""
THUMB_CACHE_BYTES = 64 << 20
STEP_CACHE_BYTES = 128 << 20
IMMUTABLE = "private, max-age=31536000, immutable"
REVALIDATE = "no-cache"
IMAGE_TYPES = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "bmp": "image/bmp",
}
"""Formats a browser shows as they are (others, e.g. TIFF, are converted to PNG)."""
AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg", "flac": "audio/flac"}


MEDIA_WORKERS = 2
"""Threads for thumbnails and other object bytes: a pool of their own, apart from the pool the
metrics and runs requests read in (`UiState.call`), so a page of slow images never holds a thread
those need."""


class MediaPool:
    """The media requests' worker threads: at most `workers` at once."""

    def __init__(self, workers: int = MEDIA_WORKERS) -> None:
        self.workers = workers
        self._limiter: anyio.CapacityLimiter | None = None

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._limiter is None:  # made on first use, inside the server's event loop
            self._limiter = anyio.CapacityLimiter(self.workers)
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)


class UndecodableObject(ValueError):
    """Stored bytes that cannot be turned into what was asked (e.g. an image Pillow cannot
    open): answered 422 with the reason, the rest of the page is unaffected."""


@dataclass(frozen=True)
class Media:
    body: bytes
    media_type: str
    etag: str
    cache_control: str


class LruCache:
    """A least-recently-used cache bounded by the total size of its values (thread-safe)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[Any, ...], tuple[Any, int]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> Any:
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            self._items.move_to_end(key)
            return found[0]

    def put(self, key: tuple[Any, ...], value: Any, nbytes: int) -> None:
        if nbytes > self.max_bytes // 4:
            return  # one value may not push out most of the others
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._size -= old[1]
            self._items[key] = (value, nbytes)
            self._size += nbytes
            while self._size > self.max_bytes and self._items:
                _, (_, dropped) = self._items.popitem(last=False)
                self._size -= dropped


@dataclass
class Caches:
    """Encoded answers (thumbnails), and the stored objects of recently shown steps: a page of
    thumbnails asks for every object of a step, and reading them one by one from a compacted
    file would decode the same row group each time."""

    answers: LruCache = field(default_factory=lambda: LruCache(THUMB_CACHE_BYTES))
    steps: LruCache = field(default_factory=lambda: LruCache(STEP_CACHE_BYTES))


def thumb_size(value: str | None) -> int | None:
    if value in (None, "", "0"):
        return None
    try:
        size = int(value)
    except ValueError:
        raise BadRequest(f"size must be a whole number of pixels, not {value!r}") from None
    return next((s for s in THUMB_SIZES if s >= size), THUMB_SIZES[-1])


def find_sequence(state: UiState, run_hash: str, seq_id: str) -> tuple[Any, SequenceInfo]:
    """(record, catalogue entry) of a sequence; MissingRunError when there is none."""
    record = find_record(state, run_hash)
    for entry in record.catalogue():
        if entry.seq_id == seq_id:
            return record, entry.info
    if record.end_time is None:  # a live writer may have sequences its sidecar does not list yet
        known = {e.seq_id for e in record.catalogue()}
        for info in uncatalogued_sequences(state.layout, run_hash, known):
            if info.seq_id == seq_id:
                return record, info
    raise MissingRunError(f"run {run_hash} has no sequence {seq_id}")


def read_object(
    state: UiState,
    caches: Caches,
    address: tuple[str, str, int, int],
    size: int | None,
    version: str | None,
) -> Media:
    run_hash, seq_id, step, index = address
    record, info = find_sequence(state, run_hash, seq_id)
    current = version_of(record)
    stable = current != "" and version == current
    key = (run_hash, seq_id, step, index, size, current)
    if stable and size is not None:
        cached = caches.answers.get(key)
        if cached is not None:
            return cast(Media, cached)
    if stable:  # a finished run's step: read once, every object of it
        rows = caches.steps.get(key[:3] + (current,))
        if rows is None:
            rows = _step_rows(state, run_hash, info, step)
            caches.steps.put(key[:3] + (current,), rows, sum(len(p) for p, _ in rows.values()))
        found = rows.get(index)
    else:  # a run being written: that one object, as it is now
        found = _step_rows(state, run_hash, info, step, index).get(index)
    if found is None:
        raise MissingRunError(f"{info.name!r} of run {run_hash} has no object at {step}/{index}")
    payload, meta_text = found
    body, media_type = encode(info.kind, payload, parse_meta(meta_text), size)
    digest = hashlib.blake2b(body, digest_size=12).hexdigest()
    media = Media(body, media_type, f'"{digest}"', IMMUTABLE if stable else REVALIDATE)
    if stable and size is not None:
        caches.answers.put(key, media, len(body))
    return media


def _step_rows(
    state: UiState, run_hash: str, info: SequenceInfo, step: int, index: int | None = None
) -> dict[int, tuple[bytes, str | None]]:
    """index -> (payload, meta JSON) of the objects of one step (or of one of them)."""
    table = read_object_rows(
        state.layout, run_hash, info, ["payload", "meta"], steps=[step], index=index
    )
    return {
        int(i): (bytes(p), m)
        for i, p, m in zip(
            to_numpy(table.column("index")).tolist(),
            table.column("payload").to_pylist(),
            table.column("meta").to_pylist(),
            strict=True,
        )
    }


def encode(kind: str, payload: bytes, meta: dict[str, Any], size: int | None) -> tuple[bytes, str]:
    """What the browser gets for a stored object, and its media type."""
    base = element_kind(kind)
    if base == IMAGE_KIND:
        fmt = str(meta.get("format", ""))
        if _looks_like(fmt, payload) and (size is None or _fits(meta, size, len(payload))):
            return payload, IMAGE_TYPES[fmt]  # already small: sent as stored, nothing decoded
        return thumbnail(payload, size), "image/webp" if webp_ok() else "image/png"
    if base == AUDIO_KIND:
        return payload, AUDIO_TYPES.get(str(meta.get("format", "")), "application/octet-stream")
    if base == FIGURE_KIND:
        return payload, "application/json"
    if base == DISTRIBUTION_KIND:
        from aim_parquet.objects import Distribution

        dist = Distribution.from_record(payload, meta)
        body = {"bin_count": dist.bin_count, "range": dist.range, "weights": dist.weights.tolist()}
        return json_bytes(body), "application/json"
    return payload.decode("utf-8", "replace").encode("utf-8"), "text/plain; charset=utf-8"


SMALL_ORIGINAL_BYTES = 48 << 10
"""A stored image no larger than the thumbnail asked for, and at most this many bytes, is sent
as it is (re-encoding it would cost CPU and gain little)."""


_SIGNATURES = {
    "png": (b"\x89PNG\r\n\x1a\n",),
    "jpeg": (b"\xff\xd8\xff",),
    "gif": (b"GIF87a", b"GIF89a"),
    "webp": (b"RIFF",),
    "bmp": (b"BM",),
}


def _looks_like(fmt: str, payload: bytes) -> bool:
    """The stored bytes start as a browser shows `fmt` (else they go through Pillow, which says
    what is wrong with them)."""
    return any(payload.startswith(sig) for sig in _SIGNATURES.get(fmt, ()))


def _fits(meta: dict[str, Any], size: int, nbytes: int) -> bool:
    try:
        side = max(int(meta.get("width", 0)), int(meta.get("height", 0)))
    except (TypeError, ValueError):
        return False
    return 0 < side <= size and nbytes <= SMALL_ORIGINAL_BYTES


_WEBP: list[bool] = []


def webp_ok() -> bool:
    if not _WEBP:
        from PIL import features

        _WEBP.append(bool(features.check("webp")))
    return _WEBP[0]


def thumbnail(payload: bytes, size: int | None) -> bytes:
    """The image scaled to fit `size` x `size` (never enlarged), as WebP (PNG where Pillow has
    no WebP); `size` None converts only (for formats a browser cannot show)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(payload)) as img:
            if size is not None:
                img.draft("RGB", (size, size))  # JPEG: decode at a reduced scale
            img.load()
            frame = img.convert("RGBA" if _has_alpha(img) else "RGB")
    except UnidentifiedImageError:
        raise UndecodableObject(
            "the stored bytes of this image are not in any picture format Pillow can read"
        ) from None
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UndecodableObject(f"the stored image cannot be decoded: {exc}") from None
    if size is not None:
        frame.thumbnail((size, size), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if webp_ok():
        frame.save(out, "WEBP", quality=85, method=2)
    else:
        frame.save(out, "PNG", compress_level=3)
    return out.getvalue()


def _has_alpha(img: Any) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info


def routes(state: UiState) -> list[Route]:
    caches = Caches()
    pool = MediaPool()

    @api_errors
    async def object_endpoint(request: Request) -> Response:
        p = request.path_params
        run_hash = validate_run_hash(p["hash"])
        seq_id = p["seq"]
        if not is_valid_seq_id(seq_id):
            raise BadRequest(f"{seq_id!r} is not a sequence id (20 hex digits)")
        step, index = whole(p["step"], "step"), whole(p["index"], "index")
        params = request.query_params
        size = thumb_size(params.get("size"))
        try:
            media = await pool.call(
                read_object, state, caches, (run_hash, seq_id, step, index), size, params.get("v")
            )
        except UndecodableObject as exc:
            return error_response(422, "undecodable", str(exc))
        headers = {"etag": media.etag, "cache-control": media.cache_control}
        if request.headers.get("if-none-match") == media.etag:
            return Response(status_code=304, headers=headers)
        return Response(media.body, media_type=media.media_type, headers=headers)

    return [
        Route(
            "/api/objects/{hash}/{seq}/{step}/{index}",
            object_endpoint,
            methods=["GET"],
        )
    ]
