"""Exports to object storage: `s3://`, `gs://` and any fsspec URL.

An object store has no atomic rename of a prefix, so an export to a URI is published in two steps
(FORMAT.md, "Exports to object storage"):

1. the dataset is built in a local temp folder (the same files as a local export) and every file
   is uploaded under a fresh prefix, `URI/exports/<export id>/`, that no reader looks at yet;
2. the pointer `URI/aim_parquet_export.json` is written last, in one request: it names the
   prefix and lists every file of the export. Readers read the pointer, then only the files it
   lists. An upload cut off anywhere leaves the previous pointer (the previous export, whole) or
   no pointer at all.

After publishing, the exporter removes prefixes that are neither the new nor the previous export
and were started more than `STALE_UPLOAD_S` ago (left by interrupted uploads); the previous
export stays, so a reader that read the old pointer a moment ago can finish. One exporter per
URI at a time.

Filesystems come from pyarrow (`s3://`, `gs://`, `hdfs://`: credentials from the usual
environment, `AWS_ACCESS_KEY_ID`, `AWS_PROFILE`, `GOOGLE_APPLICATION_CREDENTIALS`, ...; an
S3-compatible endpoint from `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`), else from fsspec when
it is installed (`az://`, `memory://`, ...).
"""

from __future__ import annotations

import calendar
import json
import logging
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pyarrow.fs as pafs

from aim_parquet.errors import AimParquetError, OptionalDependencyError, StorageError
from aim_parquet.format.paths import (
    EXPORT_METRICS_DIRNAME,
    EXPORT_OBJECTS_DIRNAME,
    EXPORT_POINTER_FILENAME,
    RUNS_TABLE_FILENAME,
)

log = logging.getLogger(__name__)

EXPORTS_PREFIX = "exports"
STALE_UPLOAD_S = 3600.0
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_ID_RE = re.compile(r"^(\d{8}T\d{6}Z)-[0-9a-f]{8}$")
_PYARROW_SCHEMES = {"s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss"}


def uri_scheme(target: str | os.PathLike[str]) -> str | None:
    """The scheme of a URI target (`"s3"`), or None for a local path (also `file://`)."""
    match = _SCHEME_RE.match(os.fspath(target))
    if match is None or match.group(1).lower() == "file":
        return None
    return match.group(1).lower()


def is_remote_target(target: str | os.PathLike[str]) -> bool:
    return uri_scheme(target) is not None


@dataclass(frozen=True)
class RemoteTarget:
    """An export target: the filesystem, the root path inside it and the URI as given."""

    fs: pafs.FileSystem
    root: str
    uri: str

    def path(self, relative: str) -> str:
        return f"{self.root}/{relative}" if self.root else relative


def _s3_filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """pyarrow's S3 filesystem; an endpoint override from the environment when the URI names
    none (older pyarrow versions do not read `AWS_ENDPOINT_URL` themselves)."""
    parts = urlsplit(uri)
    query = parse_qs(parts.query)
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if "endpoint_override" in query or not endpoint:
        return pafs.FileSystem.from_uri(uri)  # type: ignore[no-any-return]
    ep = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    region = (query.get("region") or [""])[0] or os.environ.get("AWS_REGION")
    keys: dict[str, str] = {}
    if parts.username is not None:  # s3://KEY:SECRET@bucket, as pyarrow's from_uri accepts
        keys = {"access_key": unquote(parts.username), "secret_key": unquote(parts.password or "")}
    fs = pafs.S3FileSystem(
        **keys,
        endpoint_override=ep.netloc,
        scheme=ep.scheme or "https",
        region=region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
    )
    return fs, f"{parts.hostname or ''}{parts.path}".rstrip("/")


def open_target(uri: str) -> RemoteTarget:
    """Resolve `uri` to a filesystem (pyarrow's own, else fsspec's); a clear error when no
    filesystem serves its scheme."""
    scheme = uri_scheme(uri)
    if scheme is None:
        raise AimParquetError(f"{redacted(uri)!r} is not a URI (expected s3://, gs://, ...)")
    try:
        if scheme == "s3":
            fs, root = _s3_filesystem(uri)
        elif scheme in _PYARROW_SCHEMES:
            fs, root = pafs.FileSystem.from_uri(uri)
        else:
            fs, root = _fsspec_filesystem(uri)
    except (OSError, ValueError) as exc:
        if isinstance(exc, AimParquetError):
            raise
        raise StorageError(
            f"cannot open {redacted(uri)}: {exc}; check the URI and the credentials in the "
            "environment"
        ) from exc
    return RemoteTarget(fs, str(root).rstrip("/"), redacted(uri).rstrip("/"))


def redacted(uri: str) -> str:
    """`uri` without the credentials a URI may carry (`s3://KEY:SECRET@bucket`), for messages."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]).geturl()


def _fsspec_filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    try:
        import fsspec
    except ImportError:
        raise OptionalDependencyError(
            f"no filesystem for {redacted(uri)!r}: pyarrow serves s3://, gs:// and hdfs://; for other "
            "schemes install fsspec and its backend (pip install fsspec adlfs ...)"
        ) from None
    try:
        fs, root = fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as exc:
        raise OptionalDependencyError(f"no fsspec filesystem for {redacted(uri)!r}: {exc}") from exc
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), str(root)


def read_pointer(target: RemoteTarget) -> dict[str, Any] | None:
    """The published pointer of `target`, or None when there is none yet."""
    path = target.path(EXPORT_POINTER_FILENAME)
    if target.fs.get_file_info(path).type == pafs.FileType.NotFound:
        return None
    with target.fs.open_input_stream(path) as f:
        data = f.read()
    try:
        pointer = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        pointer = None
    if not isinstance(pointer, dict) or pointer.get("format") != "aim_parquet.export":
        raise AimParquetError(
            f"{target.uri}/{EXPORT_POINTER_FILENAME} is not an aim_parquet export pointer; "
            "choose another URI"
        )
    return pointer


def _check_target(target: RemoteTarget) -> dict[str, Any] | None:
    """The current pointer; refuses a non-empty location that is not an export."""
    pointer = read_pointer(target)
    if pointer is None:
        listing = target.fs.get_file_info(pafs.FileSelector(target.root, allow_not_found=True))
        if any(i.base_name != EXPORTS_PREFIX for i in listing):
            raise AimParquetError(
                f"{target.uri} holds other data and no {EXPORT_POINTER_FILENAME}: it is not an "
                "aim_parquet export; choose a new or empty location"
            )
    return pointer


def _new_export_id() -> str:
    return f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{secrets.token_hex(4)}"


def _listed_files(local: Path) -> list[tuple[str, int]]:
    """(relative posix path, bytes) of every file of a local export folder, pointer excluded."""
    out = []
    for path in sorted(local.rglob("*")):
        if path.is_file() and path.name != EXPORT_POINTER_FILENAME:
            out.append((path.relative_to(local).as_posix(), path.stat().st_size))
    return out


def publish_export(local: Path, target: RemoteTarget, *, source: str) -> tuple[int, int]:
    """Upload the local export folder `local` to `target` and publish it (see module doc);
    returns (files, bytes) of the published export."""
    prefix = f"{EXPORTS_PREFIX}/{_new_export_id()}"
    files = _listed_files(local)
    try:
        previous = _check_target(target)
        for relative, _size in files:
            _upload(local / relative, target, f"{prefix}/{relative}")
        _verify_upload(target, prefix, files)
        pointer = _pointer(prefix, files, source)
        with target.fs.open_output_stream(target.path(EXPORT_POINTER_FILENAME)) as out:
            out.write(json.dumps(pointer, indent=1, ensure_ascii=False).encode())
    except OSError as exc:
        if isinstance(exc, AimParquetError):
            raise
        raise StorageError(
            f"export to {target.uri} failed: {exc}; the published export (if any) is unchanged; "
            "check the credentials and the endpoint, then export again"
        ) from exc
    keep = {prefix, previous.get("prefix") if previous else None}
    _remove_stale_uploads(target, keep)
    return len(files), sum(size for _r, size in files)


def _upload(path: Path, target: RemoteTarget, relative: str) -> None:
    with open(path, "rb") as src, target.fs.open_output_stream(target.path(relative)) as out:
        while chunk := src.read(8 << 20):
            out.write(chunk)


def _verify_upload(target: RemoteTarget, prefix: str, files: list[tuple[str, int]]) -> None:
    """Every file is there with its size before the pointer names it."""
    infos = target.fs.get_file_info([target.path(f"{prefix}/{rel}") for rel, _s in files])
    for (relative, size), info in zip(files, infos, strict=True):
        if info.type != pafs.FileType.File or info.size != size:
            raise StorageError(
                f"upload to {target.uri}: {prefix}/{relative} is missing or incomplete "
                f"after upload ({info.size} of {size} bytes); nothing was published"
            )


def _pointer(prefix: str, files: list[tuple[str, int]], source: str) -> dict[str, Any]:
    objects: dict[str, list[str]] = {}
    for relative, _size in files:
        parts = relative.split("/")
        if parts[0] == EXPORT_OBJECTS_DIRNAME and len(parts) == 3:
            objects.setdefault(parts[1], []).append(f"{prefix}/{relative}")
    return {
        "format": "aim_parquet.export",
        "format_version": 1,
        "source": source,
        "created_at": time.time(),
        "prefix": prefix,
        "runs": f"{prefix}/{RUNS_TABLE_FILENAME}",
        "metrics": [
            f"{prefix}/{r}" for r, _s in files if r.startswith(f"{EXPORT_METRICS_DIRNAME}/")
        ],
        "objects": objects,
        "files": [{"path": f"{prefix}/{r}", "bytes": size} for r, size in files],
    }


def _remove_stale_uploads(target: RemoteTarget, keep: set[str | None]) -> None:
    """Delete export prefixes other than `keep` started over `STALE_UPLOAD_S` ago; a failure
    only logs (the new export is published already)."""
    selector = pafs.FileSelector(target.path(EXPORTS_PREFIX), allow_not_found=True)
    try:
        entries = target.fs.get_file_info(selector)
    except OSError as exc:
        log.warning("aim_parquet: cannot list %s/%s: %s", target.uri, EXPORTS_PREFIX, exc)
        return
    now = time.time()
    for entry in entries:
        name = entry.base_name
        match = _ID_RE.match(name)
        if f"{EXPORTS_PREFIX}/{name}" in keep or match is None:
            continue
        started = calendar.timegm(time.strptime(match.group(1), "%Y%m%dT%H%M%SZ"))
        if now - started < STALE_UPLOAD_S:
            continue  # perhaps another exporter still uploading
        try:
            target.fs.delete_dir(target.path(f"{EXPORTS_PREFIX}/{name}"))
        except OSError as exc:
            log.warning(
                "aim_parquet: cannot remove %s/%s/%s: %s", target.uri, EXPORTS_PREFIX, name, exc
            )
