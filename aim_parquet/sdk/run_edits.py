"""Property edits of a run this `Run` object does not write (Aim persists them too).

`run.name = ...`, `run.description`, `run.experiment`, `run.archived`, `run.add_tag()` and
`run.remove_tag()` on a run from `repo.get_run()`, `iter_runs()`, `query_runs()`,
`Run(h, read_only=True)` or a closed `Run`:

- when this process has the run open for writing (another `Run` handle), the change goes through
  that writer, as if made there;
- otherwise the sidecar is rewritten atomically under the run's write lock, as by
  `aim-parquet runs archive` (`storage.sidecar_edits`), so no writer can be running meanwhile;
- when another process writes the run, `RunLockedError` names it (host, pid, since when).

Tags are applied as a change against what the object last saw (tags added and removed), so an
edit never undoes tags another process added meanwhile. Params stay read-only on such runs
(`ReadOnlyRunError` / `RunClosedError`), as in Aim.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aim_parquet.format.meta import RunMeta
from aim_parquet.sdk import shared_writers
from aim_parquet.sdk.run_base import RunBase
from aim_parquet.storage.maintenance.sidecar_edits import change_run

EDITABLE = frozenset({"name", "description", "experiment", "archived", "tags"})


def _tags_after(
    seen: tuple[str, ...], wanted: tuple[str, ...], now: tuple[str, ...]
) -> tuple[str, ...]:
    removed = set(seen) - set(wanted)
    kept = tuple(t for t in now if t not in removed)
    return kept + tuple(t for t in wanted if t not in seen and t not in kept)


def edit_props(run: RunBase, changes: dict[str, Any]) -> RunMeta:
    """Persist `changes` (a subset of EDITABLE) of a run `run` does not write; the new metadata."""
    seen: RunMeta = run._meta
    writer = shared_writers.open_writer(run._layout, run.hash)
    if writer is not None:
        fields = dict(changes)
        if "tags" in fields:
            fields["tags"] = _tags_after(seen.tags, tuple(fields["tags"]), writer.meta.tags)
        writer.update_meta(**fields)
        return writer.meta

    def change(meta: RunMeta) -> RunMeta:
        fields = dict(changes)
        if "tags" in fields:
            fields["tags"] = _tags_after(seen.tags, tuple(fields["tags"]), meta.tags)
        return replace(meta, **fields)

    return change_run(run._layout, run.hash, f"set {', '.join(sorted(changes))} of", change)
