"""Metadata records: the repository marker, the run sidecar with its sequence catalogue, and the
compaction manifest. Frozen dataclasses with `to_json()` / `from_json()`; unknown keys are ignored
on read, `format_version` is always written, and a newer version is refused with a clear error.
The JSON text itself (strict encoding, bounded decoding, checked fields) is `format.json_records`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from aim_parquet.errors import CorruptFileError, FormatVersionError
from aim_parquet.format.json_records import (
    context_of,
    decode_json_values,
    decode_number,
    encode_number,
    integer,
    is_plain_entry,
    is_plain_sidecar,
    json_bytes,
    loads_json_object,
    number,
    opt_integer,
    opt_str,
    seq_id_of,
    typed,
)
from aim_parquet.format.kinds import is_metric_kind
from aim_parquet.format.paths import COMPACTED_DIRNAME, is_segment_name, is_valid_seq_id
from aim_parquet.format.run_fields import DEFAULT_EXPERIMENT, display_name, experiment_or_default
from aim_parquet.format.values import decode_json_value, encode_json_value

FORMAT_VERSION = 1
MULTI_WRITER_FORMAT_VERSION = 2  # the sidecar of a run with several writers, and their parts
FORMAT_NAME = "aim_parquet"


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
            "first": encode_number(self.first) if isinstance(self.first, float) else self.first,
            "last": encode_number(self.last) if isinstance(self.last, float) else self.last,
            "min": encode_number(self.min),
            "max": encode_number(self.max),
        }
        if self.reach is not None:
            data["reach"] = self.reach.to_json()
        if self.has_rewrites:
            data["rewritten"] = True
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SequenceInfo:
        if is_plain_entry(data):  # the fields as they are (`json_records`, "the plain case")
            get = data.get
            context = get("context")
            return cls(
                data["seq_id"], data["name"], {} if context is None else context, data["kind"],
                get("count", 0), get("first_step"), get("last_step"), get("first"), get("last"),
                get("min"), get("max"), CatalogueReach.from_json(get("reach")),
                get("rewritten") is True,
            )  # fmt: skip
        if not isinstance(data, dict):
            raise TypeError(f"catalogue entry is not an object: {data!r:.40}")
        return cls(
            seq_id=seq_id_of(data["seq_id"]),
            name=typed(data["name"], str, "sequence name"),
            context=context_of(data.get("context")),
            kind=typed(data["kind"], str, "sequence kind"),
            count=integer(data.get("count", 0)),
            first_step=opt_integer(data.get("first_step")),
            last_step=opt_integer(data.get("last_step")),
            first=decode_json_value(data.get("first")),
            last=decode_json_value(data.get("last")),
            min=decode_number(data.get("min")),
            max=decode_number(data.get("max")),
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
            seq_id=seq_id_of(seq_id),
            name=name,
            context=context_of(context),
            kind=kind,
            count=integer(count),
            first_step=opt_integer(first_step),
            last_step=opt_integer(last_step),
            first=decode_json_value(first),
            last=decode_json_value(last),
            min=decode_number(lo),
            max=decode_number(hi),
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
            if is_plain_sidecar(data):  # the fields as they are (`json_records`, "the plain case")
                get = data.get
                end_time = get("end_time")
                return cls(
                    data["hash"], float(data["creation_time"]), get("name"), get("description"),
                    get("experiment") or DEFAULT_EXPERIMENT, tuple(get("tags") or ()),
                    get("archived", False), None if end_time is None else float(end_time),
                    decode_json_values(get("params") or {}),
                    tuple([SequenceInfo.from_json(s) for s in get("sequences") or ()]),
                    float(get("updated_at") or 0.0), data["format_version"],
                )  # fmt: skip
            params = data.get("params") or {}
            sequences = data.get("sequences") or []
            tags = data.get("tags") or []
            if not isinstance(params, dict) or not isinstance(sequences, list):
                raise TypeError("'params' must be an object and 'sequences' a list")
            if not isinstance(tags, (list, tuple)) or not all(isinstance(t, str) for t in tags):
                raise TypeError("'tags' must be a list of strings")
            return cls(
                hash=typed(data["hash"], str, "hash"),
                creation_time=number(data["creation_time"]),
                name=opt_str(data.get("name"), "name"),
                description=opt_str(data.get("description"), "description"),
                experiment=experiment_or_default(opt_str(data.get("experiment"), "experiment")),
                tags=tuple(tags),
                archived=typed(data.get("archived", False), bool, "archived"),
                end_time=None if data.get("end_time") is None else number(data["end_time"]),
                params=decode_json_value(params),
                sequences=tuple(SequenceInfo.from_json(s) for s in sequences),
                updated_at=number(data.get("updated_at") or 0.0),
                format_version=data["format_version"],
            )
        except (KeyError, TypeError, ValueError, OverflowError) as exc:  # (10**400 as a time)
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
        except (KeyError, TypeError, ValueError, OverflowError) as exc:  # (10**400 as a time)
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
