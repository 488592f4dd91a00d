"""What the run index holds per run: a `RunRecord` (run-level fields, params and catalogue,
decoded on demand) and its `CatalogueEntry`s (what a sequence query looks at).

A record comes either from a sidecar just read (its JSON object, already validated as a RunMeta)
or from a row of the index file (`storage.index.index_file`), whose params stay JSON text until
they are read and whose catalogue stays unparsed JSON until a query needs it: a run predicate never parses it, and a sequence query parses a run's catalogue
keys (`[seq_id, name, kind, context, start, end]`) but only the stats row (`[count, first_step,
last_step, first, last, min, max]`, at `start:end` of the stats line) of a sequence that
matches: parsing floats is most of the cost of JSON.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from aim_parquet.errors import CorruptFileError
from aim_parquet.format.json_records import loads_json
from aim_parquet.format.meta import FORMAT_NAME, FORMAT_VERSION, RunMeta, SequenceInfo
from aim_parquet.format.paths import is_valid_seq_id
from aim_parquet.format.run_fields import display_name, experiment_or_default
from aim_parquet.format.values import TAG, decode_json_value
from aim_parquet.storage.index.catalogue_entries import Catalogue, CatalogueEntry

__all__ = ["Catalogue", "CatalogueEntry", "RunRecord", "damaged_entry", "json_text"]


_MISSING: Any = object()


def _is_key_row(row: Any) -> bool:
    """`[seq_id, name, kind, context, start, end]` with the types a query relies on."""
    return (
        isinstance(row, list)
        and len(row) == 6
        and isinstance(row[0], str)
        and is_valid_seq_id(row[0])
        and isinstance(row[1], str)
        and isinstance(row[2], str)
        and isinstance(row[3], dict)
        and type(row[4]) is int
        and type(row[5]) is int
    )


def damaged_entry(run_hash: str, exc: Exception) -> CorruptFileError:
    return CorruptFileError(
        f"run index entry of run {run_hash} is damaged ({exc!r}); "
        "run `aim-parquet verify --repair` to rebuild the index."
    )


_ASCII_JSON = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"))  # (`json.dumps` with
# these arguments makes an encoder per call: most of its time for a small value)


def json_text(obj: Any) -> str:
    """ASCII JSON: valid UTF-8 even for strings with lone surrogates."""
    return _ASCII_JSON.encode(obj)


_PLAIN = frozenset({str, int, float, bool, type(None)})  # JSON values decoded as they are


class RunRecord:
    """The run-level fields of one run, decoded on demand.

    Attribute names are RunMeta's (`hash`, `name`, `display_name`, `description`, `experiment`,
    `tags`, `archived`, `creation_time`, `end_time`, `updated_at`, `params`, `sequences`), so a
    query view reads either. `meta` is the full, validated RunMeta. Built from a sidecar's JSON
    object (`data`, with its params and catalogue), or from the index file (`data` the run-level
    fields, `params` and where the `catalogue` lines are). `is_rebuilt`: the catalogue is not the
    sidecar's but the one scanned from the segments, because the run's writer died before it
    caught the sidecar up (`storage.online.catalogue_scan`).
    """

    __slots__ = (
        "hash",
        "_data",
        "_items",
        "_source",
        "_raw_params",
        "_keys",
        "_infos",
        "_meta",
        "_params",
        "_decoded",
        "_created",
        "is_rebuilt",
        "_columns",
        "_row",
    )

    def __init__(
        self,
        run_hash: str,
        data: dict[str, Any],
        meta: RunMeta | None = None,
        *,
        catalogue: Catalogue | None = None,
        params: dict[str, Any] | None = None,
        is_rebuilt: bool = False,
    ) -> None:
        self.hash = run_hash
        self.is_rebuilt = is_rebuilt  # the catalogue was scanned from the data: its writer died
        self._source = catalogue
        if catalogue is None:  # the sidecar's JSON object
            self._raw_params: Any = data.get("params") or {}
            self._data = {k: v for k, v in data.items() if k not in ("params", "sequences")}
            self._items: list[dict[str, Any]] = data.get("sequences") or []
        else:  # from the index file: run-level fields only, params given apart
            self._raw_params = params or {}
            self._data = data
            self._items = []
        self._keys: list[list[Any]] | None = None
        self._infos: dict[int, SequenceInfo] = {}
        self._meta = meta
        self._params: dict[str, Any] | None = None
        self._decoded: dict[str, Any] = {}  # params decoded one by one by `param`
        self._created: float | None = None  # creation_time, parsed once
        self._columns: Any = None  # the index's CatalogueColumns of a plain row, and its row
        self._row = -1
        if meta is not None:
            self._params = meta.params
            self._infos = dict(enumerate(meta.sequences))

    @classmethod
    def from_index(
        cls,
        run_hash: str,
        data: dict[str, Any],
        params: dict[str, Any] | str,
        raw: bytes,
        start: int,
        keys_end: int,
        stats_end: int,
        is_rebuilt: bool,
        created: float,
        columns: Any = None,
        row: int = -1,
    ) -> RunRecord:
        """A record of the index file (`__init__` with `catalogue=`, without its branches: a
        fresh process makes one per run)."""
        self = cls.__new__(cls)
        self.hash = run_hash
        self.is_rebuilt = is_rebuilt
        self._source = Catalogue(raw, start, keys_end, stats_end)
        self._raw_params = params
        self._data = data
        self._items = []
        self._keys = None
        self._infos = {}
        self._meta = None
        self._params = None
        self._decoded = {}
        self._created = created
        self._columns = columns  # (`storage.index.catalogue_columns`: the catalogue as
        self._row = row  # columns, when the row is plain; its JSON is then never parsed)
        return self

    # -- params ----------------------------------------------------------------------------
    def raw_params(self) -> dict[str, Any]:
        """The params as stored (tagged JSON)."""
        raw = self._raw_params
        if type(raw) is str:  # from the index file: JSON text, parsed on first use
            try:
                raw = loads_json(raw.encode("ascii", "surrogatepass"), "params")
                if type(raw) is not dict:
                    raise ValueError("params are not an object")
            except (ValueError, CorruptFileError) as exc:
                raise damaged_entry(self.hash, exc) from exc
            self._raw_params = raw
        return raw  # type: ignore[no-any-return]

    def params_text(self) -> str:
        """The params as the index file stores them (ASCII JSON text)."""
        raw = self._raw_params
        return raw if type(raw) is str else json_text(raw)

    def stored_params(self) -> Any:
        """`raw_params()`, None when they do not decode."""
        try:
            return self.raw_params()
        except CorruptFileError:
            return None

    @property
    def params(self) -> dict[str, Any]:
        if self._params is None:
            self._params = self._decode(self.raw_params())
        return self._params

    def _decode(self, raw: Any) -> Any:
        if type(raw) in _PLAIN:
            return raw
        if type(raw) is dict and TAG not in raw and all(type(v) in _PLAIN for v in raw.values()):
            return dict(raw)  # a dict of plain values (the usual params): nothing is tagged
        try:
            return decode_json_value(raw)
        except (ValueError, TypeError, KeyError) as exc:
            raise damaged_entry(self.hash, exc) from exc

    def param(self, name: str, default: Any = None) -> Any:
        """`params[name]`, decoding only that param (`default` when there is none)."""
        if self._params is not None:
            return self._params.get(name, default)
        value = self._decoded.get(name, _MISSING)
        if value is _MISSING:
            raw = self.raw_params()
            if TAG in raw:  # a param named like the tag: the whole dict is encoded
                return self.params.get(name, default)
            if name not in raw:
                return default
            value = self._decoded[name] = self._decode(raw[name])
        return value

    # -- catalogue -------------------------------------------------------------------------
    def sequence_keys(self) -> list[list[Any]]:
        """`[seq_id, name, kind, context, ...]` of every catalogued sequence."""
        if self._keys is None:
            try:
                if self._columns is not None:
                    keys = self._columns.keys(self._row)
                elif self._source is not None:
                    raw, start, keys_end, _ = self._source
                    keys = loads_json(raw[start:keys_end], "catalogue keys")
                    if not isinstance(keys, list) or not all(_is_key_row(k) for k in keys):
                        raise ValueError("bad catalogue key rows")
                else:
                    keys = [SequenceInfo.json_key(d) for d in self._items]
            except (ValueError, KeyError, TypeError, AttributeError, CorruptFileError) as exc:
                raise damaged_entry(self.hash, exc) from exc
            self._keys = keys
        return self._keys

    def _stats_row(self, position: int) -> Any:
        """(TypeError or ValueError when the stored row is damaged.)"""
        if self._source is None:
            return SequenceInfo.json_stats(self._items[position])
        key = self.sequence_keys()[position]
        raw, _, keys_end, stats_end = self._source
        start, end = keys_end + 1 + int(key[4]), keys_end + 1 + int(key[5])
        if not keys_end < start < end <= stats_end:
            raise ValueError("catalogue stats row out of its line")
        return loads_json(raw[start:end], "catalogue stats")

    def sequence_info(self, position: int) -> SequenceInfo:
        """The full catalogue entry at `position` (decoding its stats row on first use)."""
        info = self._infos.get(position)
        if info is None:
            try:
                key = self.sequence_keys()[position]
                if self._columns is not None:
                    found: SequenceInfo = self._columns.info(self._row, position, key)
                    self._infos[position] = found
                    return found
                stats = self._stats_row(position)
                if not isinstance(stats, list) or len(stats) != 7:
                    raise ValueError("bad catalogue stats row")
                info = SequenceInfo.from_rows(key[:4], stats)
            except (IndexError, KeyError, TypeError, ValueError, CorruptFileError) as exc:
                raise damaged_entry(self.hash, exc) from exc
            self._infos[position] = info
        return info

    def catalogue(self) -> list[CatalogueEntry]:
        """Every catalogue entry, decoded only as far as a query needs."""
        return [CatalogueEntry(self, i, key) for i, key in enumerate(self.sequence_keys())]

    @property
    def sequences(self) -> tuple[SequenceInfo, ...]:
        return tuple(self.sequence_info(i) for i in range(len(self.sequence_keys())))

    def catalogue_columns(self) -> tuple[Any, int] | None:
        """(the index's `CatalogueColumns`, this run's row) when its catalogue is read from
        them (`storage.index.catalogue_columns`), else None."""
        return None if self._columns is None else (self._columns, self._row)

    def without_columns(self) -> RunRecord:
        """This record reading its JSON catalogue, not the index's columns (for checks)."""
        if self._columns is None or self._source is None:
            return self
        raw, start, keys_end, stats_end = self._source
        return RunRecord.from_index(
            self.hash, self._data, self._raw_params, raw, start, keys_end, stats_end,
            self.is_rebuilt, self.creation_time,
        )  # fmt: skip

    def stored_catalogue(self) -> tuple[bytes, bytes]:
        """The catalogue's keys and stats lines as the index file stores them (ASCII JSON)."""
        if self._source is not None:
            raw, start, keys_end, stats_end = self._source
            return raw[start:keys_end], raw[keys_end + 1 : stats_end]
        keys: list[list[Any]] = []
        rows: list[str] = []
        offset = 1  # after the line's "["
        for key, item in zip(self.sequence_keys(), self._items, strict=True):
            text = json_text(SequenceInfo.json_stats(item))
            keys.append([*key[:4], offset, offset + len(text)])
            rows.append(text)
            offset += len(text) + 1  # and its ","
        return json_text(keys).encode("ascii"), ("[" + ",".join(rows) + "]").encode("ascii")

    # -- run-level fields ------------------------------------------------------------------
    @property
    def fields(self) -> dict[str, Any]:
        """The sidecar's run-level fields (no params, no catalogue)."""
        return self._data

    @property
    def data(self) -> dict[str, Any]:
        """The sidecar's JSON object, params and catalogue included."""
        sequences = [s.to_json() for s in self.sequences]
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "hash": self.hash,
            **self._data,
            "creation_time": self.creation_time,
            "updated_at": self.updated_at,
            "end_time": self.end_time,
            "params": self.raw_params(),
            "sequences": sequences,
        }

    @property
    def meta(self) -> RunMeta:
        """The full RunMeta, catalogue included."""
        if self._meta is None:
            self._meta = replace(self.run_meta(), sequences=self.sequences)
        return self._meta

    def run_meta(self) -> RunMeta:
        """A RunMeta of the run-level fields and params only (`sequences` empty): what a
        read-only Run needs, which reads its catalogue fresh from the sidecar."""
        if self._meta is not None:
            return self._meta
        what = f"run index entry of run {self.hash}"
        try:
            data = {"format_version": FORMAT_VERSION, **self._data}
            data.update(
                hash=self.hash,
                params=self.raw_params(),
                end_time=self.end_time,
                creation_time=self.creation_time,
                updated_at=self.updated_at,
            )
        except (TypeError, ValueError) as exc:
            raise damaged_entry(self.hash, exc) from exc
        return RunMeta.from_json(data, what)

    @property
    def name(self) -> str | None:
        return self._data.get("name")

    @property
    def display_name(self) -> str:
        return display_name(self.hash, self._data.get("name"))

    @property
    def description(self) -> str | None:
        return self._data.get("description")

    @property
    def experiment(self) -> str:
        return experiment_or_default(self._data.get("experiment"))

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(self._data.get("tags") or ())

    @property
    def archived(self) -> bool:
        return bool(self._data.get("archived", False))

    @property
    def creation_time(self) -> float:
        created = self._created
        if created is None:
            created = self._created = float(self._data["creation_time"])
        return created

    @property
    def end_time(self) -> float | None:
        end = self._data.get("end_time")
        return None if end is None else float(end)

    @property
    def has_end_time(self) -> bool:
        """Whether the run was closed (cheaper than parsing `end_time`)."""
        return self._data.get("end_time") is not None

    @property
    def updated_at(self) -> float:
        return float(self._data.get("updated_at") or 0.0)
