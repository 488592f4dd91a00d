"""Metadata records: the repository marker, the run sidecar with its sequence catalogue, and the
compaction manifest. Frozen dataclasses with `to_json()` / `from_json()`; unknown keys are ignored
on read, `format_version` is always written, and a newer version is refused with a clear error.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aim_parquet.errors import CorruptFileError, FormatVersionError
from aim_parquet.format.kinds import is_metric_kind
from aim_parquet.format.paths import COMPACTED_DIRNAME, is_segment_name, is_valid_seq_id
from aim_parquet.format.run_fields import DEFAULT_EXPERIMENT, display_name, experiment_or_default
from aim_parquet.format.values import MAX_JSON_DEPTH, decode_json_value, encode_json_value

FORMAT_VERSION = 1
MULTI_WRITER_FORMAT_VERSION = 2  # the sidecar of a run with several writers, and their parts
FORMAT_NAME = "aim_parquet"


def json_bytes(obj: Any, **options: Any) -> bytes:
    """Strict UTF-8 JSON (no NaN tokens); strings holding lone surrogates (which UTF-8 cannot
    encode) are written as `\\uXXXX` escapes so any JSON reader still opens the file."""
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False, **options)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj, ensure_ascii=True, allow_nan=False, **options).encode("ascii")


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')


def json_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in the JSON text `raw` (brackets inside strings
    do not count). Cheap for the usual file: one with fewer brackets cannot be deeper."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:
        return 0  # (not exact: only "no deeper than the bound")
    bare = np.frombuffer(_JSON_STRING.sub(b"", raw), dtype=np.uint8)
    opens = ((bare == ord("[")) | (bare == ord("{"))).astype(np.int32)
    closes = ((bare == ord("]")) | (bare == ord("}"))).astype(np.int32)
    return int(np.cumsum(opens - closes).max(initial=0))


def loads_json(raw: bytes, what: str) -> Any:
    """Parse the JSON file content `raw` (`what` names the file in errors): CorruptFileError when
    it is not UTF-8 JSON or is nested deeper than `MAX_JSON_DEPTH` levels, so one hostile file
    can never exhaust the stack of a command that reads every run."""
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise CorruptFileError(
            f"{what} is nested deeper than {MAX_JSON_DEPTH} levels; no file aim_parquet writes "
            "is. Run `aim-parquet verify --repair` to rebuild or quarantine it."
        )
    try:
        return json.loads(raw.decode("utf-8", "surrogatepass"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CorruptFileError(
            f"{what} is not valid JSON ({exc}). Run `aim-parquet verify --repair` to rebuild it."
        ) from exc


def loads_json_object(raw: bytes, what: str) -> dict[str, Any]:
    """`loads_json` that also requires a JSON object."""
    data = loads_json(raw, what)
    if not isinstance(data, dict):
        raise CorruptFileError(f"{what} is not a JSON object.")
    return data


def check_format_version(
    data: dict[str, Any], what: str, max_version: int = FORMAT_VERSION
) -> None:
    version = data.get("format_version")
    if not isinstance(version, int):
        raise CorruptFileError(f"{what}: missing or invalid 'format_version'.")
    if version > max_version:
        raise FormatVersionError(
            f"{what} was written by format version {version}, newer than this aim_parquet "
            f"(reads up to {max_version}). Upgrade aim_parquet: pip install -U aim_parquet."
        )


def _typed(value: Any, typ: type, what: str) -> Any:
    if not isinstance(value, typ):
        raise TypeError(f"{what} must be a {typ.__name__}, not {type(value).__name__}")
    return value


def _opt_str(value: Any, what: str) -> str | None:
    return None if value is None else _typed(value, str, what)


def _float(value: Any) -> float:
    """A number field (bools and strings refused: `float("1e9")` would accept a string)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, not {type(value).__name__}")
    return float(value)


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, not {type(value).__name__}")
    return value


def _opt_int(value: Any) -> int | None:
    return None if value is None else _int(value)


def _seq_id(value: Any) -> str:
    if not isinstance(value, str) or not is_valid_seq_id(value):
        raise ValueError(f"invalid sequence id {value!r:.40}")
    return value


def _context(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"context must be an object, not {type(value).__name__}")
    return value


def _num(value: float | None) -> Any:
    if value is None or math.isfinite(value):
        return value
    return encode_json_value(value)


def _unnum(value: Any) -> float | None:
    return None if value is None else float(decode_json_value(value))


@dataclass(frozen=True)
class RepoMarker:
    """`.aim/aim_parquet.json`: marks the folder as an aim_parquet repository."""

    format_version: int = FORMAT_VERSION
    created_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "format_version": self.format_version,
            "created_at": self.created_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], what: str = "repository marker") -> RepoMarker:
        check_format_version(data, what)
        return cls(format_version=data["format_version"], created_at=data.get("created_at", 0.0))


@dataclass(frozen=True)
class CatalogueReach:
    """How far a catalogue entry's summary reaches into its sequence's segments: every complete
    batch of the segments named up to `segment` is summarised, and of `segment` itself the
    batches in its first `bytes` bytes. `is_sealed`: `segment` never grows again (its writer
    moved on or is gone), so only segments named after it can hold points not summarised yet.
    """

    segment: str
    bytes: int
    is_sealed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"segment": self.segment, "bytes": self.bytes, "sealed": self.is_sealed}

    @classmethod
    def from_json(cls, data: Any) -> CatalogueReach | None:
        """The reach of a catalogue entry's JSON; None when absent or not valid (a reader then
        summarises the sequence from all of its points)."""
        if not isinstance(data, dict):
            return None
        segment, size, sealed = data.get("segment"), data.get("bytes"), data.get("sealed")
        if not isinstance(segment, str) or not is_segment_name(segment):
            return None
        if type(size) is not int or size < 0 or not isinstance(sealed, bool):
            return None
        return cls(segment, size, sealed)


@dataclass(frozen=True)
class SequenceInfo:
    """One entry of a run's sequence catalogue: a (name, context) sequence and its summary.

    `reach` is bookkeeping, not part of the summary: it says up to where in the segments the
    summary is complete (see `CatalogueReach`), and takes no part in comparisons.
    """

    seq_id: str
    name: str
    context: dict[str, Any]
    kind: str  # Aim dtype: 'int', 'float', 'number', 'aim.image', 'list(aim.image)', ...
    count: int = 0  # visible points: steps (objects: (step, index) pairs), last write wins
    first_step: int | None = None
    last_step: int | None = None
    first: Any = None  # value at first_step (numbers only)
    last: Any = None  # value at last_step (numbers only)
    min: float | None = None
    max: float | None = None
    reach: CatalogueReach | None = field(default=None, compare=False)
    # a write targeted a step at or before `last_step` since the summary was last made exact:
    # `count`, `min` and `max` may still include replaced points until a recount from the data
    # (`storage.online.catalogue_scan.recount_sequences`; FORMAT.md, writer rule 8)
    has_rewrites: bool = False

    @property
    def is_metric(self) -> bool:
        return is_metric_kind(self.kind)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "seq_id": self.seq_id,
            "name": self.name,
            "context": self.context,
            "kind": self.kind,
            "count": self.count,
            "first_step": self.first_step,
            "last_step": self.last_step,
            "first": _num(self.first) if isinstance(self.first, float) else self.first,
            "last": _num(self.last) if isinstance(self.last, float) else self.last,
            "min": _num(self.min),
            "max": _num(self.max),
        }
        if self.reach is not None:
            data["reach"] = self.reach.to_json()
        if self.has_rewrites:
            data["rewritten"] = True
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SequenceInfo:
        if not isinstance(data, dict):
            raise TypeError(f"catalogue entry is not an object: {data!r:.40}")
        return cls(
            seq_id=_seq_id(data["seq_id"]),
            name=_typed(data["name"], str, "sequence name"),
            context=_context(data.get("context")),
            kind=_typed(data["kind"], str, "sequence kind"),
            count=_int(data.get("count", 0)),
            first_step=_opt_int(data.get("first_step")),
            last_step=_opt_int(data.get("last_step")),
            first=decode_json_value(data.get("first")),
            last=decode_json_value(data.get("last")),
            min=_unnum(data.get("min")),
            max=_unnum(data.get("max")),
            reach=CatalogueReach.from_json(data.get("reach")),
            has_rewrites=data.get("rewritten") is True,
        )

    @staticmethod
    def json_key(data: dict[str, Any]) -> list[Any]:
        """`[seq_id, name, kind, context]` of a catalogue entry's JSON (the run index's key row)."""
        return [data["seq_id"], data["name"], data["kind"], data.get("context") or {}]

    @staticmethod
    def json_stats(data: dict[str, Any]) -> list[Any]:
        """`[count, first_step, last_step, first, last, min, max]` of a catalogue entry's JSON,
        values encoded as in `to_json` (the run index's stats row)."""
        get = data.get
        return [
            get("count", 0),
            get("first_step"),
            get("last_step"),
            get("first"),
            get("last"),
            get("min"),
            get("max"),
        ]

    @classmethod
    def from_rows(cls, key: list[Any], stats: list[Any]) -> SequenceInfo:
        """The inverse of (`json_key`, `json_stats`)."""
        seq_id, name, kind, context = key
        count, first_step, last_step, first, last, lo, hi = stats
        if not isinstance(seq_id, str) or not isinstance(name, str) or not isinstance(kind, str):
            raise TypeError("catalogue key fields must be strings")
        return cls(
            seq_id=_seq_id(seq_id),
            name=name,
            context=_context(context),
            kind=kind,
            count=_int(count),
            first_step=_opt_int(first_step),
            last_step=_opt_int(last_step),
            first=decode_json_value(first),
            last=decode_json_value(last),
            min=_unnum(lo),
            max=_unnum(hi),
        )


@dataclass(frozen=True)
class RunMeta:
    """`runs/<hash>/run.json`: a run's properties, params and sequence catalogue."""

    hash: str
    creation_time: float
    name: str | None = None
    description: str | None = None
    experiment: str = DEFAULT_EXPERIMENT
    tags: tuple[str, ...] = ()
    archived: bool = False
    end_time: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    sequences: tuple[SequenceInfo, ...] = ()
    updated_at: float = 0.0
    format_version: int = FORMAT_VERSION

    @property
    def display_name(self) -> str:
        return display_name(self.hash, self.name)

    @property
    def is_multi_writer(self) -> bool:
        """The run may have extra writers (`writers/<rank>.json`): format version 2."""
        return self.format_version >= MULTI_WRITER_FORMAT_VERSION

    def param(self, name: str, default: Any = None) -> Any:
        """`params[name]` (`default` when there is none), as `RunRecord.param`."""
        return self.params.get(name, default)

    def to_json(self, params_file: str | None = None) -> dict[str, Any]:
        """The sidecar object; with `params_file`, the params are in that file of the run
        folder (written by the caller) and the sidecar only names it."""
        data = {
            "format": FORMAT_NAME,
            "format_version": self.format_version,
            "hash": self.hash,
            "name": self.name,
            "description": self.description,
            "experiment": self.experiment,
            "tags": list(self.tags),
            "archived": self.archived,
            "creation_time": self.creation_time,
            "end_time": self.end_time,
            "updated_at": self.updated_at,
            "params": None if params_file else encode_json_value(self.params),
            "sequences": [s.to_json() for s in self.sequences],
        }
        if params_file:
            del data["params"]
            data["params_file"] = params_file
        return data

    def dumps(self, params_file: str | None = None) -> bytes:
        return json_bytes(self.to_json(params_file))

    @classmethod
    def from_json(cls, data: dict[str, Any], what: str = "run sidecar") -> RunMeta:
        check_format_version(data, what, MULTI_WRITER_FORMAT_VERSION)
        if "params_file" in data and "params" not in data:
            raise CorruptFileError(
                f"{what}: its params are in {data['params_file']!r}, which was not read "
                "(read sidecars with storage.online.params_file.read_sidecar_object)."
            )
        try:
            params = data.get("params") or {}
            sequences = data.get("sequences") or []
            tags = data.get("tags") or []
            if not isinstance(params, dict) or not isinstance(sequences, list):
                raise TypeError("'params' must be an object and 'sequences' a list")
            if not isinstance(tags, (list, tuple)) or not all(isinstance(t, str) for t in tags):
                raise TypeError("'tags' must be a list of strings")
            return cls(
                hash=_typed(data["hash"], str, "hash"),
                creation_time=_float(data["creation_time"]),
                name=_opt_str(data.get("name"), "name"),
                description=_opt_str(data.get("description"), "description"),
                experiment=experiment_or_default(_opt_str(data.get("experiment"), "experiment")),
                tags=tuple(tags),
                archived=_typed(data.get("archived", False), bool, "archived"),
                end_time=None if data.get("end_time") is None else _float(data["end_time"]),
                params=decode_json_value(params),
                sequences=tuple(SequenceInfo.from_json(s) for s in sequences),
                updated_at=_float(data.get("updated_at") or 0.0),
                format_version=data["format_version"],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptFileError(f"{what}: invalid field ({exc!r}).") from exc

    @classmethod
    def loads(cls, raw: bytes, what: str) -> RunMeta:
        return cls.from_json(loads_json_object(raw, what), what)


@dataclass(frozen=True)
class CompactedFile:
    """One Parquet file of a compaction generation."""

    path: str  # relative to the run folder, e.g. "compacted/metrics-000001.parquet"
    kind: str  # "metrics" or an object kind such as "aim.image"
    rows: int
    bytes: int


@dataclass(frozen=True)
class Manifest:
    """`runs/<hash>/compacted/manifest.json`: the commit point of compaction.

    `segments` lists every segment (as "<seq_id>/<file name>") whose points the Parquet `files`
    hold; readers read those from Parquet and every other segment from `seqs/`.
    """

    generation: int
    files: tuple[CompactedFile, ...]
    segments: frozenset[str]
    created_at: float = 0.0
    format_version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "format_version": self.format_version,
            "generation": self.generation,
            "created_at": self.created_at,
            "files": [
                {"path": f.path, "kind": f.kind, "rows": f.rows, "bytes": f.bytes}
                for f in self.files
            ],
            "segments": sorted(self.segments),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], what: str = "compaction manifest") -> Manifest:
        check_format_version(data, what)
        try:
            manifest = cls(
                generation=int(data["generation"]),
                files=tuple(
                    CompactedFile(f["path"], f["kind"], int(f["rows"]), int(f["bytes"]))
                    for f in data["files"]
                ),
                segments=frozenset(data["segments"]),
                created_at=float(data.get("created_at") or 0.0),
                format_version=data["format_version"],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptFileError(f"{what}: invalid field ({exc!r}).") from exc
        # Readers open and the compactor deletes these paths: a damaged or hostile manifest must
        # never name a file outside the run folder's `compacted/` and `seqs/`.
        for f in manifest.files:
            if not isinstance(f.path, str) or _COMPACTED_PATH_RE.fullmatch(f.path) is None:
                raise CorruptFileError(f"{what}: unsafe compacted file path {f.path!r}.")
        for seg in manifest.segments:
            seq_id, _, name = seg.partition("/") if isinstance(seg, str) else ("", "", "")
            if not (is_valid_seq_id(seq_id) and is_segment_name(name)):
                raise CorruptFileError(f"{what}: unsafe segment entry {seg!r}.")
        return manifest


_COMPACTED_PATH_RE = re.compile(re.escape(COMPACTED_DIRNAME) + r"/[A-Za-z0-9_\-][A-Za-z0-9_.\-]*")
