"""MLflow's file store (`mlruns/`), read without mlflow or PyYAML.

    mlruns/<experiment id>/meta.yaml                name, experiment_id, lifecycle_stage, ...
    mlruns/<experiment id>/<run id>/meta.yaml       run_id, run_name, status (3 = FINISHED),
                                                    start_time, end_time (ms), lifecycle_stage, ...
    mlruns/<experiment id>/<run id>/params/<key>    the value (keys with '/' are sub-folders)
    mlruns/<experiment id>/<run id>/tags/<key>      the value
    mlruns/<experiment id>/<run id>/metrics/<key>   one line per point: "timestamp value step"
                                                    (older files: "timestamp value", step 0)

The meta.yaml files are flat mappings of scalars written by PyYAML; `parse_flat_yaml` reads that
subset (plain, single- and double-quoted scalars, null, numbers, booleans, `[]`, and plain
scalars folded onto indented continuation lines).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aim_parquet.convert.mlflow_records import STATUS_NAMES, Point, RunRecord
from aim_parquet.convert.sink import CountingSink
from aim_parquet.errors import SourceError

DELETED = "deleted"
_INT = re.compile(r"[-+]?[0-9]+\Z")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z")


def parse_flat_yaml(text: str) -> dict[str, Any]:
    """A one-level YAML mapping of scalars (what MLflow writes in meta.yaml)."""
    out: dict[str, Any] = {}
    key: str | None = None
    raw = ""
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0] in " \t" and key is not None:  # a folded continuation of the last value
            raw += " " + line.strip()
            continue
        if key is not None:
            out[key] = _scalar(raw)
        name, sep, rest = line.partition(":")
        if not sep:
            raise ValueError(f"not a 'key: value' line: {line[:60]!r}")
        key, raw = name.strip(), rest.strip()
    if key is not None:
        out[key] = _scalar(raw)
    return out


def _scalar(raw: str) -> Any:
    if raw in ("", "null", "~", "Null", "NULL"):
        return None
    if raw in ("[]", "{}"):
        return [] if raw == "[]" else {}
    if raw.startswith("'") and raw.endswith("'") and len(raw) >= 2:
        return raw[1:-1].replace("''", "'")
    if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
        return json.loads(raw)
    if raw in ("true", "True", "TRUE", "false", "False", "FALSE"):
        return raw.lower() == "true"
    if _INT.match(raw):
        return int(raw)
    if _FLOAT.match(raw):
        return float(raw)
    return raw


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root.resolve())

    def list_runs(self) -> tuple[list[RunRecord], list[str]]:
        records: list[RunRecord] = []
        problems: list[str] = []
        try:
            folders = sorted(p for p in self.root.iterdir() if p.is_dir())
        except OSError as exc:
            raise SourceError(f"cannot read MLflow file store {self.root}: {exc}") from exc
        for exp_dir in folders:
            meta_file = exp_dir / "meta.yaml"
            if exp_dir.name.startswith(".") or not meta_file.is_file():
                continue
            try:
                exp = parse_flat_yaml(meta_file.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                problems.append(f"experiment {exp_dir.name}: unreadable meta.yaml ({exc}); skipped")
                continue
            if exp.get("lifecycle_stage") == DELETED:
                continue
            exp_id = str(exp.get("experiment_id", exp_dir.name))
            exp_name = str(exp.get("name") or exp_id)
            for run_dir in sorted(p for p in exp_dir.iterdir() if p.is_dir()):
                if not (run_dir / "meta.yaml").is_file():
                    continue
                try:
                    record = self._record(run_dir, exp_id, exp_name)
                except (OSError, ValueError) as exc:
                    problems.append(
                        f"run {exp_dir.name}/{run_dir.name}: unreadable ({exc}); skipped"
                    )
                    continue
                if record is not None:
                    records.append(record)
        return records, problems

    def _record(self, run_dir: Path, exp_id: str, exp_name: str) -> RunRecord | None:
        meta = parse_flat_yaml((run_dir / "meta.yaml").read_text(encoding="utf-8"))
        if meta.get("lifecycle_stage") == DELETED:
            return None
        status = meta.get("status")
        info = {
            "name": meta.get("run_name") or None,
            "status": STATUS_NAMES.get(status, status) if isinstance(status, int) else status,
            "start_time": meta.get("start_time"),
            "end_time": meta.get("end_time"),
            "user_id": meta.get("user_id"),
            "artifact_uri": meta.get("artifact_uri"),
            "lifecycle_stage": meta.get("lifecycle_stage"),
            "source_type": meta.get("source_type"),
            "source_name": meta.get("source_name"),
            "entry_point_name": meta.get("entry_point_name"),
            "source_version": meta.get("source_version"),
        }
        run_id = str(meta.get("run_id") or meta.get("run_uuid") or run_dir.name)
        return RunRecord(
            run_id,
            exp_id,
            exp_name,
            info,
            params=dict(_key_files(run_dir / "params")),
            tags=dict(_key_files(run_dir / "tags")),
        )

    def _run_dir(self, record: RunRecord) -> Path:
        return self.root / record.experiment_id / record.run_id

    def fingerprint(self, record: RunRecord) -> str:
        run_dir = self._run_dir(record)
        digest = hashlib.sha256((run_dir / "meta.yaml").read_bytes())
        for sub in ("metrics", "params", "tags"):
            for path in sorted((run_dir / sub).rglob("*")):
                if path.is_file():
                    digest.update(f"{path.relative_to(run_dir)}\0{path.stat().st_size}\0".encode())
        return digest.hexdigest()[:16]

    def metric_histories(
        self, record: RunRecord, sink: CountingSink
    ) -> Iterator[tuple[str, list[Point]]]:
        folder = self._run_dir(record) / "metrics"
        for key, path in _key_paths(folder):
            points: list[Point] = []
            bad = 0
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    parts = line.split()
                    if not parts:
                        continue
                    try:
                        step = int(parts[2]) if len(parts) >= 3 else 0
                        points.append((int(parts[0]), float(parts[1]), step))
                    except (ValueError, IndexError):
                        bad += 1
            if bad:
                sink.skip(f"metric {key}: lines that are not 'timestamp value step'", bad)
            yield key, points


def _key_paths(folder: Path) -> Iterator[tuple[str, Path]]:
    if not folder.is_dir():
        return
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            yield path.relative_to(folder).as_posix(), path


def _key_files(folder: Path) -> Iterator[tuple[str, str]]:
    for key, path in _key_paths(folder):
        yield key, path.read_text(encoding="utf-8")
