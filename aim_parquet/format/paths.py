"""Where every file of a repository lives; the single source of the layout FORMAT.md describes.

Nothing here touches the disk: these are pure path computations and validators, so a run hash or a
sequence name can never become a path outside the repository.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from pathlib import Path
from typing import Any

from aim_parquet.errors import InvalidRunHashError

REPO_DIRNAME = ".aim"
MARKER_FILENAME = "aim_parquet.json"
RUNS_DIRNAME = "runs"
INDEX_DIRNAME = "index"
TRASH_DIRNAME = "trash"
SIDECAR_FILENAME = "run.json"
# a run's params when they are large, written once per change (FORMAT.md, "Large params")
PARAMS_FILE_MIN_BYTES = 64 << 10
LOCK_FILENAME = "lock"
COMPACT_LOCK_FILENAME = "compact.lock"
SEQS_DIRNAME = "seqs"
COMPACTED_DIRNAME = "compacted"
MANIFEST_FILENAME = "manifest.json"
SEGMENT_SUFFIX = ".arrows"
TEMP_PREFIX = ".tmp-"
CHANGE_MARKER_FILENAME = "changed"
WRITERS_DIRNAME = "writers"
WRITER_PART_SUFFIX = ".json"
WRITER_LOCK_SUFFIX = ".lock"
ATTACH_GATE_FILENAME = "attach.lock"  # in writers/: see storage.online.writer_gate
INDEX_FILENAME = "runs.arrow"  # in index/: the run index
OLD_INDEX_FILENAME = "runs.jsonl"  # in index/: the run index of format 4 and before (removed)
INDEX_LOCK_FILENAME = "runs.lock"  # in index/: taken by whoever rewrites the run index
RUNS_TABLE_FILENAME = "runs.parquet"  # in index/ (and in an export): one row per run
QUARANTINE_DIRNAME = "quarantine"  # in .aim/: what `verify --repair` moved aside
EXPORT_POINTER_FILENAME = "aim_parquet_export.json"  # at the top of an export (local or remote)
EXPORT_METRICS_DIRNAME = "metrics"  # an export's metrics/<run hash>.parquet
EXPORT_OBJECTS_DIRNAME = "objects"  # an export's objects/<kind token>/<run hash>.parquet
AIM_REPO_FILES = ("run_metadata.sqlite", "meta", "seqs", "VERSION")
"""What Aim 3.x writes in its `.aim/` (its SQLite run table, RocksDB trees and repo version);
none of these names is ours."""
MAX_WRITER_RANK = 2**20 - 1

RUN_HASH_PATTERN = "[0-9a-f]{24}"  # a run hash (`is_valid_run_hash`: the whole name)
_HASH_RE = re.compile(RUN_HASH_PATTERN)
_SEQ_ID_RE = re.compile(r"[0-9a-f]{20}")
_SEGMENT_RE = re.compile(r"[0-9a-f]{16}-[0-9]+-[0-9a-f]{6}-[0-9]{6}\.arrows")
_PARAMS_FILE_RE = re.compile(r"params-[0-9a-f]{16}\.json")
_WRITER_FILE_RE = re.compile(r"([1-9][0-9]{0,6})\.(json|lock)")


def generate_run_hash() -> str:
    """A new random run hash: 24 lowercase hex characters (as Aim's)."""
    return secrets.token_hex(12)


def validate_run_hash(run_hash: object) -> str:
    """Return `run_hash` if it is 24 lowercase hex characters, else raise InvalidRunHashError."""
    if not isinstance(run_hash, str) or _HASH_RE.fullmatch(run_hash) is None:
        raise InvalidRunHashError(
            f"Invalid run hash {run_hash!r}: a run hash is 24 lowercase hex characters "
            "(as printed by `aim-parquet runs ls`)."
        )
    return run_hash


def is_valid_run_hash(name: str) -> bool:
    return _HASH_RE.fullmatch(name) is not None


def is_valid_seq_id(name: str) -> bool:
    return _SEQ_ID_RE.fullmatch(name) is not None


def is_segment_name(name: str) -> bool:
    return _SEGMENT_RE.fullmatch(name) is not None


def writer_file_rank(name: str) -> tuple[int, str] | None:
    """(rank, "json" or "lock") for a file name of `writers/` (`<rank>.json`, `<rank>.lock`),
    None for any other name (temp files included)."""
    match = _WRITER_FILE_RE.fullmatch(name)
    if match is None or int(match.group(1)) > MAX_WRITER_RANK:
        return None
    return int(match.group(1)), match.group(2)


def validate_writer_rank(rank: object) -> int:
    """`rank` if it is the rank of an extra writer (1 … 2**20-1), else ValueError."""
    if type(rank) is not int or not 1 <= rank <= MAX_WRITER_RANK:
        raise ValueError(f"an extra writer's rank is an int from 1 to {MAX_WRITER_RANK}: {rank!r}")
    return rank


def canonical_context(context: dict[str, Any] | None) -> str:
    """The canonical JSON text of a context: sorted keys, compact, so order never matters."""
    return json.dumps(context or {}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sequence_id(name: str, context: dict[str, Any] | None) -> str:
    """Stable id of the sequence (name, context): 20 hex chars of SHA-1 over its canonical form."""
    text = json.dumps([name, canonical_context(context)], ensure_ascii=False)
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:20]


def new_session_token() -> str:
    """The random part of a writer session's segment names (6 hex), drawn once per session."""
    return secrets.token_hex(3)


def segment_name(session_ns: int, counter: int, session_token: str | None = None) -> str:
    """Segment file name; lexicographic order is write order, within a session and across the
    sessions of one run.

    `<session start, ns, 16 hex>-<pid>-<6 random hex>-<counter, 6 digits>.arrows`. The random
    part must be the same for every segment of a session (pass `new_session_token()` once), or
    two segments of one session would sort by it instead of by their counter. The session start
    must be later than that of every existing segment of the run (`next_session_ns`), or a
    session started under a clock that is behind would sort before older data.
    """
    token = session_token if session_token is not None else new_session_token()
    return f"{session_ns:016x}-{os.getpid()}-{token}-{counter:06d}{SEGMENT_SUFFIX}"


def segment_session_ns(name: str) -> int:
    """The session start (ns) a segment name begins with; `name` must be a segment name."""
    return int(name[:16], 16)


def next_session_ns(now_ns: int, newest_existing_ns: int | None) -> int:
    """The session start of a new writer session: the wall clock, but never at or before the
    newest existing session of the run (name order is write order even if the clock went back)."""
    if newest_existing_ns is None:
        return now_ns
    return max(now_ns, newest_existing_ns + 1)


def resolve_repo_root(repo: str | os.PathLike[str] | None) -> Path:
    """The folder that holds `.aim/` for a user-supplied `repo` argument (Aim's rules).

    None: the nearest ancestor of the current directory holding `.aim`, else the current directory.
    A trailing `/.aim` is accepted and `~` is expanded.
    """
    if repo is None:
        cwd = Path.cwd()
        for folder in (cwd, *cwd.parents):
            if (folder / REPO_DIRNAME).is_dir():
                return folder
        return cwd
    path = Path(os.path.expanduser(os.fspath(repo)))
    if path.name == REPO_DIRNAME:
        path = path.parent
    return path.absolute()


class RepoLayout:
    """Paths inside one repository root (the folder holding `.aim`)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.aim_dir = root / REPO_DIRNAME
        self.marker = self.aim_dir / MARKER_FILENAME
        self.runs_dir = self.aim_dir / RUNS_DIRNAME
        self.index_dir = self.aim_dir / INDEX_DIRNAME
        self.trash_dir = self.aim_dir / TRASH_DIRNAME
        self.change_marker = self.index_dir / CHANGE_MARKER_FILENAME
        self.index_file = self.index_dir / INDEX_FILENAME
        self.old_index_file = self.index_dir / OLD_INDEX_FILENAME
        self.index_lock = self.index_dir / INDEX_LOCK_FILENAME
        self.runs_table = self.index_dir / RUNS_TABLE_FILENAME
        self.quarantine_dir = self.aim_dir / QUARANTINE_DIRNAME

    def run_dir(self, run_hash: str) -> Path:
        return self.runs_dir / validate_run_hash(run_hash)

    def sidecar(self, run_hash: str) -> Path:
        return self.run_dir(run_hash) / SIDECAR_FILENAME

    def sidecar_path(self, run_hash: str) -> str:
        """`sidecar(run_hash)` as a str, built without Path objects (the run index reads every
        sidecar of the repository)."""
        return os.path.join(os.fspath(self.runs_dir), validate_run_hash(run_hash), SIDECAR_FILENAME)

    def lock_file(self, run_hash: str) -> Path:
        return self.run_dir(run_hash) / LOCK_FILENAME

    def compact_lock(self, run_hash: str) -> Path:
        return self.run_dir(run_hash) / COMPACT_LOCK_FILENAME

    def seqs_dir(self, run_hash: str) -> Path:
        return self.run_dir(run_hash) / SEQS_DIRNAME

    def seq_dir(self, run_hash: str, seq_id: str) -> Path:
        if not is_valid_seq_id(seq_id):
            raise ValueError(f"invalid sequence id {seq_id!r}")
        return self.seqs_dir(run_hash) / seq_id

    def compacted_dir(self, run_hash: str) -> Path:
        return self.run_dir(run_hash) / COMPACTED_DIRNAME

    def manifest(self, run_hash: str) -> Path:
        return self.compacted_dir(run_hash) / MANIFEST_FILENAME

    def writers_dir(self, run_hash: str) -> Path:
        """The folder of a multi-writer run's extra writers (ranks 1, 2, …)."""
        return self.run_dir(run_hash) / WRITERS_DIRNAME

    def writer_part(self, run_hash: str, rank: int) -> Path:
        """The catalogue part of extra writer `rank`: `writers/<rank>.json`."""
        return self.writers_dir(run_hash) / f"{validate_writer_rank(rank)}{WRITER_PART_SUFFIX}"

    def writer_lock(self, run_hash: str, rank: int) -> Path:
        """The write lock of extra writer `rank`: `writers/<rank>.lock`."""
        return self.writers_dir(run_hash) / f"{validate_writer_rank(rank)}{WRITER_LOCK_SUFFIX}"

    def attach_gate(self, run_hash: str) -> Path:
        """The flock extra writers take (shared) while they attach, and `runs rm|cp|mv`
        (exclusive) while they work on the run: `writers/attach.lock`."""
        return self.writers_dir(run_hash) / ATTACH_GATE_FILENAME


def params_file_name(encoded: bytes) -> str:
    """`params-<16 hex of SHA-256>.json`: named by its content, so it is never rewritten."""
    return f"params-{hashlib.sha256(encoded).hexdigest()[:16]}.json"


def is_params_file_name(name: object) -> bool:
    return isinstance(name, str) and _PARAMS_FILE_RE.fullmatch(name) is not None
