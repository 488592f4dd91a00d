"""A run with several writers (the ranks of one distributed job): where each extra writer's lock
and catalogue part live, how readers merge the parts, and what "active" means for such a run.

Rank 0 is the run's main writer, exactly as a single writer: `lock` and `run.json` (properties,
params and the catalogue of its own sequences). Rank r >= 1 is an extra writer: it holds
`writers/<r>.lock` and rewrites only `writers/<r>.json`, a sidecar-shaped *part* holding its own
catalogue and its own `creation_time`, `end_time` and `updated_at` (params and properties empty).
Nothing a writer writes is ever rewritten by another. The sidecar of such a run has format
version 2 (`RunMeta.is_multi_writer`), so a release that knows nothing of parts refuses the run
instead of missing the other ranks' sequences (or compacting a segment a live rank still grows).

Every sequence belongs to one writer, the rank its context names (`{"rank": r}`, an int), rank 0
when it names none; a writer never writes a sequence of another rank (`Run.track` refuses), so
two writers never append to one sequence folder and their segment names never collide.

The merged view (`merge_parts`): the catalogue is run.json's followed by each part's (by rank);
`end_time` is set once every writer closed (the latest close), `updated_at` is the latest. The
run is active while it has no `end_time` and any writer's lock is held (`is_run_active`, the one
home of that rule for every layer).
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from aim_parquet.format.meta import RunMeta
from aim_parquet.format.paths import MAX_WRITER_RANK, RepoLayout
from aim_parquet.format.run_shape import RunFields
from aim_parquet.storage.base.lock import run_lock_holder
from aim_parquet.storage.base.repo_files import writer_ranks
from aim_parquet.storage.base.safe_fs import MAX_JSON_FILE_BYTES, read_regular


def sequence_owner(context: dict[str, Any] | None) -> int:
    """The rank of the writer a sequence belongs to: its context's int `rank`, else 0."""
    rank = (context or {}).get("rank")
    if type(rank) is int and 0 <= rank <= MAX_WRITER_RANK:
        return rank
    return 0


def load_writer_part(layout: RepoLayout, run_hash: str, rank: int) -> RunMeta | None:
    """Extra writer `rank`'s part, None when it has written none yet. CorruptFileError,
    FormatVersionError or UnsafeFileError when it cannot be read."""
    path = layout.writer_part(run_hash, rank)
    try:
        raw = read_regular(path, "writer part", MAX_JSON_FILE_BYTES)
    except FileNotFoundError:
        return None
    return RunMeta.loads(raw, f"writer part {path}")


def load_writer_parts(layout: RepoLayout, run_hash: str) -> dict[int, RunMeta]:
    """Every extra writer's part, by rank."""
    parts = {}
    for rank in writer_ranks(layout, run_hash, "json"):
        part = load_writer_part(layout, run_hash, rank)
        if part is not None:
            parts[rank] = part
    return parts


def merge_parts(main: RunMeta, parts: dict[int, RunMeta]) -> RunMeta:
    """The run as readers see it: run.json's properties and params, every writer's catalogue,
    `end_time` once every writer closed."""
    if not parts:
        return main
    sequences = list(main.sequences)
    seen = {s.seq_id for s in sequences}
    end_times = [main.end_time]
    updated = main.updated_at
    for rank in sorted(parts):
        part = parts[rank]
        for info in part.sequences:
            if info.seq_id not in seen:
                seen.add(info.seq_id)
                sequences.append(info)
        end_times.append(part.end_time)
        updated = max(updated, part.updated_at)
    end_time = None if any(t is None for t in end_times) else max(t for t in end_times if t)
    return replace(main, sequences=tuple(sequences), end_time=end_time, updated_at=updated)


def is_run_active(layout: RepoLayout, run: RunFields) -> bool:
    """Whether a live process writes the run now: it has no `end_time` and a live process holds
    a writer's lock of it (any writer's, for a run with several). A run whose writer was killed
    has no `end_time` but is not active."""
    return run.end_time is None and run_lock_holder(layout, run.hash) is not None


def parts_key(layout: RepoLayout, run_hash: str) -> str:
    """What identifies the current version of every part of the run (each is replaced, never
    rewritten in place): their ranks and stats, for caches keyed by the sidecar's stat."""
    keys = []
    for rank in writer_ranks(layout, run_hash, "json"):
        try:
            st = os.stat(layout.writer_part(run_hash, rank), follow_symlinks=False)
        except FileNotFoundError:
            continue
        keys.append(f"{rank:x}:{st.st_mtime_ns:x}-{st.st_size:x}-{st.st_ino:x}")
    return ",".join(keys)
