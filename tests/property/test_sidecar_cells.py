"""The run index built from sidecars decoded straight into cells (`storage.index.sidecar_cells`)
against the index built through a RunRecord per run (`sidecar_entries.read_sidecar_entry`, the
path every sidecar took before): on random repositories written by the SDK (odd params and
contexts, names, tags, archived, resumed and rewritten runs, a live run) whose sidecars are then
mutated at random (wrong types, bools for numbers, huge numbers, tagged and untaggable params,
lone surrogates, a newer or multi-writer format, an open run whose writer is gone, rewritten
entries, a params file, invalid JSON, a missing or unreadable sidecar), the index files are
equal byte for byte, and so are the damaged runs reported."""

from __future__ import annotations

import json
import math
import os
import random
import shutil
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.index import run_index
from aim_parquet.storage.index.run_index import RunIndex
from tests.random_runs import QUIET, write_random_runs

PARAMS: list[Any] = [
    1, 2.5, "x", "\u00e9t\u00e9", None, True, [1, 2], {"a": {"b": {"c": {"d": 1}}}},
    (1, 2), 10**30, {"hash": 1}, {"name": "n"}, "\ud800", math.nan, b"bytes",
]  # fmt: skip
ODD: list[Any] = [
    None, True, False, 0, 1, -1, 2**64, 10**400, 1.5, math.inf, "x", "\ud800", "\u00e9", [],
    ["t", 1], {}, {"__aim_parquet__": "bad"}, {"a": [1, {"b": None}]},
]  # fmt: skip
FIELDS = [
    "name", "description", "experiment", "archived", "tags", "creation_time", "updated_at",
    "end_time", "params", "sequences", "hash", "format_version", "extra", "params_file",
]  # fmt: skip
ENTRY_FIELDS = [
    "seq_id", "name", "kind", "context", "count", "first_step", "last_step", "first", "last",
    "min", "max", "rewritten", "reach",
]  # fmt: skip


def _mutate(path: Path, rng: random.Random) -> None:
    """One random change of a sidecar."""
    try:
        data = json.loads(path.read_bytes())
    except ValueError:
        data = None
    if type(data) is not dict:
        return  # (damaged by an earlier round)
    what = rng.randrange(8)
    if what == 0:
        path.write_bytes(rng.choice([b"{", b"[]", b"", b"\xff", b'{"format_version": 1}']))
        return
    if what == 1:
        data[rng.choice(FIELDS)] = rng.choice(ODD)
    elif what == 2 and data.get("sequences"):
        entry = rng.choice(data["sequences"])
        entry[rng.choice(ENTRY_FIELDS)] = rng.choice(ODD)
    elif what == 3:
        data["end_time"] = None  # open, its writer gone: its catalogue is scanned
    elif what == 4:
        data["format_version"] = rng.choice([2, 3, 0])
    elif what == 5 and data.get("sequences"):
        entry = rng.choice(data["sequences"])  # (readers recount it from the segments)
        entry.update(rewritten=True, count=entry.get("count", 0) + 7, min=-1e9)
    elif what == 6:
        name = "params-0000000000000001.json"
        (path.parent / name).write_text(json.dumps(data.pop("params", {})))
        data["params_file"] = rng.choice([name, "../x.json", "params-0000000000000002.json"])
    else:
        data.pop(rng.choice(FIELDS), None)
    path.write_text(json.dumps(data, allow_nan=True))


def _index(repo: str, direct: bool) -> tuple[bytes, list[Any], int]:
    """Build the index from scratch: its file's bytes, the damaged runs, sidecars read."""
    shutil.rmtree(Path(repo) / ".aim" / "index", ignore_errors=True)
    patch = mock.patch.object(run_index, "sidecar_rows", lambda *a: {}) if not direct else None
    if patch is not None:
        patch.start()
    try:
        snapshot = RunIndex(RepoLayout(Path(repo))).refresh()
    finally:
        if patch is not None:
            patch.stop()
    data = (Path(repo) / ".aim" / "index" / "runs.arrow").read_bytes()
    return data, sorted(map(repr, snapshot.damaged)), snapshot.sidecars_read


@pytest.mark.parametrize("seed", range(6))
def test_index_from_cells_is_the_index_from_records(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    repo = str(tmp_path / "repo")
    hashes = write_random_runs(repo, rng, 14, PARAMS)
    live = aim.Run(repo=repo, **QUIET)  # (its lock held by this process)
    live["hparams"] = {"lr": 0.5}
    live.track(1.0, name="loss", step=0)
    runs_dir = Path(repo) / ".aim" / "runs"
    try:
        plain, _, read = _index(repo, True)
        assert plain == _index(repo, False)[0]
        assert read == len(hashes) + 1
        for round_ in range(4):
            for run_hash in rng.sample(hashes, 4):
                sidecar = runs_dir / run_hash / "run.json"
                if sidecar.exists():
                    _mutate(sidecar, rng)
            if round_ == 3:  # a missing sidecar (a run folder made long ago), an unreadable one
                victim = runs_dir / hashes[0] / "run.json"
                victim.unlink(missing_ok=True)
                os.utime(victim.parent, (1, 1))
                if os.geteuid() != 0:
                    (runs_dir / hashes[1] / "run.json").chmod(0)
            direct, damaged, _ = _index(repo, True)
            assert direct == _index(repo, False)[0]
            assert damaged == _index(repo, False)[1]
    finally:
        live.close()
