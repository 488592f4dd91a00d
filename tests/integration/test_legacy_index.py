"""Upgrading a repository whose run index is the old `.aim/index/runs.jsonl` (format 4), made
by 7db2c30's own code: its entries seed the new index where their stat key still matches the
sidecar, and the answers equal a rebuild from the sidecars, with sidecars changed, added,
removed and damaged after the old file was written; a damaged, truncated or foreign old file
gives the rebuild's answer too; first queries in several processes at once agree."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import aim_parquet as aim
from aim_parquet.format.meta import RunMeta
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.index.legacy_index import decode_legacy_index, read_legacy_index
from aim_parquet.storage.index.run_index import RunIndex, index_file_problem
from tests.conftest import PYTHON, python_env, repo_by_old_code

OLD_REV = "7db2c30"  # the last commit whose run index was runs.jsonl (format 4)
QUIET: dict[str, Any] = {"system_tracking_interval": None, "capture_terminal_logs": False}

MAKE_OLD_REPO = """
import math, os, subprocess, sys
import aim_parquet as aim
root, mode = sys.argv[1], sys.argv[2]
quiet = dict(system_tracking_interval=None, capture_terminal_logs=False)
if mode == "die":  # a writer killed before it closed: its catalogue is scanned, marked rebuilt
    run = aim.Run(repo=root, **quiet)
    run["hparams"] = {"lr": 0.5}
    run.track(2.0, name="loss", step=0)
    run.track(3.0, name="loss", step=1)
    os._exit(0)
for i in range(12):
    run = aim.Run(repo=root, experiment="a" if i % 2 else "b", **quiet)
    run["hparams"] = {"lr": 0.001 * i, "seed": i, "opt": ["adam", "sgd"][i % 2]}
    if i == 3:
        run.add_tag("best")
        run.description = "the one"
    if i == 4:
        run.archived = True
    if i == 5:
        run["blob"] = b"\\xff"
        run.name = "caf\\u00e9"
    if i == 6:
        run["hparams"] = {"lr": math.nan}
    for s in range(3):
        run.track(1.0 / (s + 1 + i), name="loss", step=s, context={"subset": "train"})
    run.track(float(i), name="acc", step=0)
    run.close()
subprocess.run([sys.executable, sys.argv[0], root, "die"], check=True)
print(len(list(aim.Repo(root).query_runs("").iter_runs())))
"""


@pytest.fixture(scope="module")
def old_repo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository written and queried by 7db2c30 (so its index is runs.jsonl)."""
    root, printed = repo_by_old_code(OLD_REV, MAKE_OLD_REPO, tmp_path_factory, "old_repo", "all")
    assert printed.split()[-1] == "12"  # (the archived run is not shown)
    layout = RepoLayout(root)
    assert layout.old_index_file.exists() and not layout.index_file.exists()
    return root


@pytest.fixture
def old_repo(old_repo_template: Path, tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(old_repo_template, root)  # (new inodes: the old file's keys no longer
    old = RepoLayout(old_repo_template).old_index_file  # match; rewrite it for this copy)
    _rekey(old, RepoLayout(root))
    return root


def _rekey(old: Path, layout: RepoLayout) -> None:
    """The old file of `old`, its stat keys made those of `layout`'s sidecars (as if 7db2c30
    had written it for this copy: only the keys differ between the two)."""
    raw = old.read_bytes()
    end = raw.index(b"\n")
    doc = json.loads(raw[:end])
    for row in doc["runs"]:
        st = os.stat(layout.sidecar_path(row[0]))
        row[1] = f"{st.st_mtime_ns:x}-{st.st_size:x}-{st.st_ino:x}"
    header = json.dumps(doc, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    layout.old_index_file.write_bytes(header + raw[end:])


def _stored(meta: RunMeta) -> str:
    """A RunMeta as the index stores it (no segment reach: a reader takes it from the sidecar)."""
    sequences = tuple(replace(s, reach=None, has_rewrites=False) for s in meta.sequences)
    return repr(replace(meta, sequences=sequences))


def _answer(index: RunIndex) -> tuple[list[str], list[Any]]:
    snapshot = index.refresh()
    runs = [_stored(r.meta) for r in snapshot.records.values()]
    newest = [r.hash for r in snapshot.newest_first]
    return [*runs, *newest], sorted((d.run_hash, d.reason) for d in snapshot.damaged)


def _reference(root: Path) -> tuple[list[str], list[Any]]:
    """The answer of an index built from the sidecars alone (nothing written)."""
    layout = RepoLayout(root)
    aside = layout.old_index_file.with_suffix(".aside")
    layout.old_index_file.rename(aside)
    try:
        index = RunIndex(layout)
        index._write = lambda: None  # type: ignore[method-assign]
        return _answer(index)
    finally:
        aside.rename(layout.old_index_file)


def _counted(layout: RepoLayout) -> tuple[RunIndex, list[str]]:
    reads: list[str] = []
    index = RunIndex(layout)
    real = index._read_sidecar
    index._read_sidecar = lambda h, k: (reads.append(h), real(h, k))[1]  # type: ignore[method-assign]
    direct = index._direct  # (the sidecars decoded straight into cells: read too)
    index._direct = lambda *a: (rows := direct(*a), reads.extend(rows))[0]
    return index, reads


def _replace_sidecar(layout: RepoLayout, run_hash: str, change: Callable[[Any], Any]) -> None:
    path = Path(layout.sidecar_path(run_hash))
    data = json.loads(path.read_text())
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(change(data)))
    tmp.replace(path)


def _change_runs(root: Path, hashes: list[str], hparams: dict[str, Any]) -> str:
    """What happens to a repository after older code wrote its index: `hashes[0]`'s sidecar
    edited by a foreign tool, `hashes[1]` resumed by the SDK (its `hparams` set), `hashes[2]`'s
    sidecar damaged, `hashes[3]` deleted and one run added (its hash returned)."""
    layout = RepoLayout(root)
    _replace_sidecar(layout, hashes[0], lambda d: {**d, "name": "edited"})
    with aim.Run(run_hash=hashes[1], repo=root, **QUIET) as run:
        run["hparams"] = hparams
    Path(layout.sidecar_path(hashes[2])).write_text("{not json")
    shutil.rmtree(layout.run_dir(hashes[3]))
    with aim.Run(repo=root, **QUIET) as run:
        run.track(1.0, name="loss", step=0)
        added: str = run.hash
    return added


def test_old_index_entries_are_taken_where_the_sidecar_is_unchanged(old_repo: Path) -> None:
    layout = RepoLayout(old_repo)
    entries = read_legacy_index(layout)
    assert len(entries) == 13
    hashes = sorted(entries)
    assert any(e.record is not None and e.record.is_rebuilt for e in entries.values())
    added = _change_runs(old_repo, hashes, {"lr": 9.0})  # (after 7db2c30 wrote its file)
    want = _reference(old_repo)
    index, reads = _counted(layout)
    assert _answer(index) == want
    assert sorted(reads) == sorted([hashes[0], hashes[1], hashes[2], added])
    assert layout.index_file.exists() and not layout.old_index_file.exists()
    assert index_file_problem(layout) is None
    again, reads = _counted(layout)  # from the new file
    assert _answer(again) == want
    assert reads == [hashes[2]]  # (the damaged one: its sidecar is read every time)


def _truncate(raw: bytes) -> bytes:
    return raw[: len(raw) * 2 // 3]


def _shift_body(raw: bytes) -> bytes:
    end = raw.index(b"\n")
    return raw[: end + 1] + b" " + raw[end + 1 :]


def _version_3(raw: bytes) -> bytes:
    return raw.replace(b'"format_version":4', b'"format_version":3', 1)


def _non_ascii(raw: bytes) -> bytes:
    return raw[:-3] + b"\xc3\xa9" + raw[-1:]


def _torn_line(raw: bytes) -> bytes:
    return raw[:-1]


def _extra_line(raw: bytes) -> bytes:
    return raw + b"[]\n[]\n"


def _bad_offsets(raw: bytes) -> bytes:
    end = raw.index(b"\n")
    doc = json.loads(raw[:end])
    doc["runs"][1][7][0] += 1
    return json.dumps(doc, separators=(",", ":")).encode() + raw[end:]


def _bad_key(raw: bytes) -> bytes:
    end = raw.index(b"\n")
    doc = json.loads(raw[:end])
    doc["runs"][0][1] = "not a stat"
    return json.dumps(doc, separators=(",", ":")).encode() + raw[end:]


def _empty(raw: bytes) -> bytes:
    return b""


def _header_only(raw: bytes) -> bytes:
    return raw[: raw.index(b"\n") + 1]


@pytest.mark.parametrize(
    "damage",
    [
        _truncate,
        _shift_body,
        _version_3,
        _non_ascii,
        _torn_line,
        _extra_line,
        _bad_offsets,
        _bad_key,
        _empty,
        _header_only,
    ],
)
def test_a_damaged_old_index_gives_the_sidecars_answer(
    old_repo: Path, damage: Callable[[bytes], bytes]
) -> None:
    layout = RepoLayout(old_repo)
    path = layout.old_index_file
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises((ValueError, KeyError, TypeError)):
        decode_legacy_index(path.read_bytes())
    want = _reference(old_repo)
    index, reads = _counted(layout)
    assert _answer(index) == want
    assert len(reads) == 13  # every sidecar read
    assert not path.exists() and index_file_problem(layout) is None


def test_a_foreign_old_index_is_not_taken(old_repo_template: Path, tmp_path: Path) -> None:
    """The old file of another copy of the repository: no key matches (other inodes)."""
    root = tmp_path / "copy"
    shutil.copytree(old_repo_template, root)
    layout = RepoLayout(root)
    for run_dir in layout.runs_dir.iterdir():  # (another copy: other values too)
        _replace_sidecar(layout, run_dir.name, lambda d: {**d, "description": "copy"})
    want = _reference(root)
    index, reads = _counted(layout)
    assert _answer(index) == want
    assert len(reads) == 13
    assert all(m.description == "copy" for m in index.metas()[0])


def test_an_old_index_link_is_not_read(old_repo: Path, tmp_path: Path) -> None:
    layout = RepoLayout(old_repo)
    real_dir = tmp_path / "elsewhere"
    layout.index_dir.rename(real_dir)
    layout.index_dir.symlink_to(real_dir)
    assert read_legacy_index(layout) == {}


QUERY_SCRIPT = """
import json, sys
import aim_parquet as aim
repo = aim.Repo(sys.argv[1])
runs = [(c.run.hash, c.run.name, c.run.experiment, c.run.archived, repr(c.run.get("hparams")))
        for c in repo.query_runs("run.archived or not run.archived").iter_runs()]
metrics = []
for m in repo.query_metrics("metric.name == 'loss'"):
    steps, values = m.values.sparse_numpy()
    metrics.append((m.run.hash, m.context.idx, steps.tolist(), values.astype(float).tolist()))
print(json.dumps([runs, sorted(metrics)]))
"""


def test_first_queries_in_several_processes_agree(old_repo: Path, tmp_path: Path) -> None:
    layout = RepoLayout(old_repo)
    script = tmp_path / "query.py"
    script.write_text(QUERY_SCRIPT)
    hashes = sorted(p.name for p in layout.runs_dir.iterdir())
    _replace_sidecar(layout, hashes[0], lambda d: {**d, "archived": True})
    reference = tmp_path / "reference"
    shutil.copytree(old_repo, reference)
    shutil.rmtree(RepoLayout(reference).index_dir)

    def query(root: Path) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [PYTHON, str(script), str(root)], env=python_env(), stdout=subprocess.PIPE, text=True
        )

    want = query(reference).communicate()[0]
    procs = [query(old_repo) for _ in range(4)]
    outs = [p.communicate()[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outs == [want] * 4
    assert json.loads(want)[0] and json.loads(want)[1]
    assert not layout.old_index_file.exists() and index_file_problem(layout) is None
    assert query(old_repo).communicate()[0] == want
