"""A repository that comes from somewhere else (a colleague's tarball, a shared or synced folder)
may hold links, FIFOs, absurdly nested JSON, decoding bombs, files of a newer format, columns of
the wrong type and a crafted run index. None of it may destroy a file outside the repository,
hang a command, exhaust memory or the stack, or stop a repo-wide command: each is reported by
`verify`, naming the file, and the other runs keep working.

Commands run in a forked child with a deadline (`forked_cli`), so a hang fails the test.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import aim_parquet as aim
from aim_parquet.errors import FormatVersionError, UnsafeFileError
from aim_parquet.format.paths import RepoLayout
from aim_parquet.format.schema import METRIC_SCHEMA
from aim_parquet.storage import RunIndex, compact_run, load_run_meta, verify_repo
from aim_parquet.storage.base import file_checks
from aim_parquet.storage.online.segments import read_segment
from tests.integration.forked_cli import run_forked
from tests.integration.repo_snapshots import QUIET, snapshot, write_rich_run


def small_run(root: Path, *, n: int = 50, name: str = "loss") -> str:
    run = aim.Run(repo=root, **QUIET)  # type: ignore[arg-type]
    run["hparams"] = {"lr": 0.1}
    for i in range(n):
        run.track(float(i), name=name, step=i)
    run.close()
    return str(run.hash)


def run_dir(root: Path, run_hash: str) -> Path:
    return root / ".aim" / "runs" / run_hash


def first_segment(root: Path, run_hash: str) -> Path:
    return sorted(run_dir(root, run_hash).glob("seqs/*/*.arrows"))[0]


def tree_digest(folder: Path) -> dict[str, str]:
    """{relative path: sha1 of content (files) or link target (links)} of a folder."""
    out = {}
    for dirpath, _dirs, names in os.walk(folder):
        for name in names:
            path = Path(dirpath) / name
            rel = str(path.relative_to(folder))
            if path.is_symlink():
                out[rel] = "link:" + os.readlink(path)
            else:
                out[rel] = hashlib.sha1(path.read_bytes()).hexdigest()
    return out


def repo_wide(root: Path, tmp: Path) -> list[list[str]]:
    r = ["--repo", str(root)]
    return [
        ["runs", "ls", *r],
        ["query", "metric.name == 'loss'", *r],
        ["stats", *r],
        ["export", "--output", str(tmp / "export"), *r],
        ["verify", *r],
        ["gc", "--grace-s", "0", *r],
        ["compact", "--rewrite-all", *r],
    ]


# -- links: nothing is followed out of the repository ------------------------------------------


def test_linked_trash_is_never_emptied_and_verify_names_it(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    victim, bystander = small_run(root), small_run(root)
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "keep.txt").write_text("precious")
    (outside / "sub" / "x").write_text("precious too")
    before = tree_digest(outside)
    (root / ".aim" / "trash").symlink_to(outside)
    r = ["--repo", str(root)]
    gc, rm, verify = run_forked(
        [["gc", "--grace-s", "0", *r], ["runs", "rm", victim, "-y", *r], ["verify", *r]]
    )
    assert tree_digest(outside) == before  # nothing outside was touched
    assert gc.code == 0 and "symbolic link" in gc.out and "not emptied" in gc.out
    assert rm.code == 1 and "symbolic link" in rm.err and len(rm.err.splitlines()) == 1
    assert run_dir(root, victim).is_dir() and run_dir(root, bystander).is_dir()
    assert verify.code == 1
    assert f"symlink: repository: {root / '.aim' / 'trash'}" in verify.out
    assert "outside the repository" in verify.out


def test_linked_lock_files_are_never_truncated(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    victim, bystander, healthy = small_run(root), small_run(root), small_run(root)
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("lock-target", "compact-lock-target"):
        (outside / name).write_text("precious data")
    (run_dir(root, victim) / "lock").unlink()
    (run_dir(root, victim) / "lock").symlink_to(outside / "lock-target")
    (run_dir(root, bystander) / "compact.lock").symlink_to(outside / "compact-lock-target")
    r = ["--repo", str(root)]
    results = run_forked(
        [
            ["gc", "--grace-s", "0", *r],
            ["runs", "archive", victim, *r],
            ["runs", "close", victim, *r],
            ["verify", *r],
            ["verify", "--repair", *r],
            ["compact", "--rewrite-all", "--verbose", *r],
        ]
    )
    with pytest.raises(UnsafeFileError, match="symbolic link"):
        aim.Run(victim, repo=root, **QUIET)  # type: ignore[arg-type]
    for name in ("lock-target", "compact-lock-target"):
        assert (outside / name).read_text() == "precious data"
    gc, archive, close, verify, repair, compact = results
    assert gc.code == 0 and f"run {bystander}: skipped" in gc.out
    for refused in (archive, close):
        assert refused.code == 1 and "symbolic link" in refused.err
    assert verify.code == 1 and "checked 3 run(s)" in verify.out
    assert verify.out.count("symlink: run ") == 2
    assert repair.code == 1 and "not repaired: remove the link" in repair.out
    compacted = {line.split()[0]: line.split()[1] for line in compact.out.splitlines()[1:4]}
    assert compacted[healthy] == "compacted"  # one bad run never stops the others


def test_segment_linked_to_dev_zero_is_refused_not_read(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    victim, healthy = small_run(root), small_run(root)
    seg = first_segment(root, victim)
    seg.unlink()
    seg.symlink_to("/dev/zero")
    query, export, compact, verify = run_forked(
        [
            ["query", "metric.name == 'loss'", "--repo", str(root)],
            ["export", "--output", str(tmp_path / "out"), "--repo", str(root)],
            ["compact", "--rewrite-all", "--repo", str(root)],
            ["verify", "--repo", str(root)],
        ],
        timeout_s=60,
    )
    assert query.code == 0 and healthy in query.out and "(50 rows)" in query.out
    assert f"skipping damaged run {victim}" in query.err and "symbolic link" in query.err
    assert export.code == 0 and f"leaves out run {victim}" in export.err
    assert verify.code == 1 and f"symlink: run {victim}: {seg}" in verify.out
    assert "'/dev/zero' (outside the repository)" in verify.out
    assert seg.is_symlink()  # compact and verify left the link alone
    assert compact.code in (0, 1)


# -- special files: never opened for reading ---------------------------------------------------


def test_fifos_hang_no_command_and_repair_moves_them_aside(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    sidecar_victim = write_rich_run(root, n=30, seed=1)
    segment_victim, healthy = small_run(root), small_run(root)
    RunIndex(RepoLayout(root)).refresh()  # the index keeps a copy of every sidecar's params
    before = snapshot(root)
    sidecar = run_dir(root, sidecar_victim) / "run.json"
    sidecar.unlink()
    os.mkfifo(sidecar)
    fifo_segment = first_segment(root, segment_victim).with_name(
        "0000000000000001-1-aaaaaa-000001.arrows"
    )
    os.mkfifo(fifo_segment)
    os.mkfifo(root / ".aim" / "index" / "changed.fifo")  # an unknown file: ignored, but named
    r = ["--repo", str(root)]
    results = run_forked([*repo_wide(root, tmp_path), ["verify", "--repair", *r], ["verify", *r]])
    ls, query, stats, export, verify, gc, compact, repair, after = results
    assert ls.code == 0 and healthy in ls.out and segment_victim in ls.out
    assert f"run {sidecar_victim}" in ls.err and "FIFO" in ls.err
    assert query.code == 0 and healthy in query.out
    assert f"skipping damaged run {segment_victim}" in query.err and "FIFO" in query.err
    assert stats.code == 0 and "1 damaged" in stats.out
    assert export.code == 0 and gc.code == 0
    assert verify.code == 1 and verify.out.count("special-file:") == 3
    assert f"special-file: run {sidecar_victim}: {sidecar}: a FIFO" in verify.out
    assert repair.code == 0, repair.out
    assert after.code == 0 and "no damage found" in after.out, after.out
    assert not fifo_segment.exists() and sidecar.is_file()
    assert snapshot(root) == before  # the sidecar was rebuilt, every point kept
    assert load_run_meta(RepoLayout(root), sidecar_victim).params["hparams"]["name"] == "net1"
    assert compact.code in (0, 1)


# -- JSON nested beyond any bound ----------------------------------------------------------------


def deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def test_deeply_nested_sidecar_is_one_damaged_run(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    victim = write_rich_run(root, n=30, seed=1)
    healthy = small_run(root)
    RunIndex(RepoLayout(root)).refresh()
    before = snapshot(root)
    sidecar = run_dir(root, victim) / "run.json"
    data = json.loads(sidecar.read_text())
    data["params"]["deep"] = deep(700)
    sidecar.write_text(json.dumps(data))
    r = ["--repo", str(root)]
    ls, query, stats, export, verify, gc, compact, repair = run_forked(
        [*repo_wide(root, tmp_path), ["verify", "--repair", *r]]
    )
    for result in (ls, query, stats, export, gc, compact):
        assert result.code == 0, result.err
        assert "RecursionError" not in result.err
    assert healthy in ls.out and f"run {victim}" in ls.err and "nested deeper" in ls.err
    assert "1 damaged" in stats.out
    assert verify.code == 1 and f"invalid-sidecar: run {victim}: {sidecar}" in verify.out
    assert repair.code == 0 and "params and properties from the run index" in repair.out
    assert snapshot(root) == before
    assert verify_repo(RepoLayout(root)).problems == ()


def test_deeply_nested_manifest_and_index_are_rebuilt(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    victim, healthy = small_run(root), small_run(root)
    compact_run(RepoLayout(root), victim, rewrite_all=True)
    RunIndex(RepoLayout(root)).refresh()
    before = snapshot(root)
    nested = "[" * 5000 + "1" + "]" * 5000  # (json.dumps itself cannot write it)
    manifest = run_dir(root, victim) / "compacted" / "manifest.json"
    manifest.write_text(manifest.read_text().rstrip()[:-1] + f', "x": {nested}}}')
    index = root / ".aim" / "index" / "runs.arrow"
    _rewrite_index(index, lambda t: _first(t, "params", f'{{"x": {nested}}}'))
    verify, query, repair = run_forked(
        [
            ["verify", "--repo", str(root)],  # (before the query rebuilds the index)
            ["query", "metric.name == 'loss'", "--repo", str(root)],
            ["verify", "--repair", "--repo", str(root)],
        ]
    )
    assert query.code == 0 and healthy in query.out and "RecursionError" not in query.err
    assert verify.code == 1 and f"invalid-manifest: run {victim}" in verify.out
    assert "damaged-index" in verify.out
    assert repair.code == 0 and "rebuilt the manifest" in repair.out
    assert snapshot(root) == before


# -- decoding bombs ------------------------------------------------------------------------------


def _zstd_segment(n: int) -> bytes:
    """A metric segment whose batch of `n` constant rows is zstd-compressed (a real IPC file)."""
    schema = METRIC_SCHEMA.with_metadata(
        {
            b"aim_parquet.name": b"loss",
            b"aim_parquet.context": b"{}",
            b"aim_parquet.kind": b"float",
            b"aim_parquet.format_version": b"1",
        }
    )
    zeros, steps = np.zeros(n), np.zeros(n, np.int64)
    batch = pa.record_batch(
        [pa.array(steps), pa.array(zeros), pa.array(steps), pa.array(zeros)], schema=METRIC_SCHEMA
    )
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with pa.ipc.new_stream(sink, schema, options=options) as writer:
        writer.write_batch(batch)
    return bytes(sink.getvalue().to_pybytes())


def test_zstd_segment_claiming_gigabytes_is_refused_before_decoding(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    victim, healthy = small_run(root), small_run(root)
    raw = _zstd_segment(1000)
    # each compressed buffer starts with its decoded length (8,000 bytes): claim 16 GiB instead
    bomb = raw.replace(struct.pack("<q", 8000), struct.pack("<q", 16 << 30))
    assert bomb != raw and len(bomb) < 4096
    seg = first_segment(root, victim).with_name("ffffffffffffffff-1-aaaaaa-000001.arrows")
    seg.write_bytes(bomb)
    with pytest.raises(UnsafeFileError, match="would decode to"):
        read_segment(seg)
    query, verify, repair, after = run_forked(
        [
            ["query", "metric.name == 'loss'", "--repo", str(root)],
            ["verify", "--repo", str(root)],
            ["verify", "--repair", "--repo", str(root)],
            ["verify", "--repo", str(root)],
        ]
    )
    assert query.code == 0 and healthy in query.out and f"run {victim}" in query.err
    assert verify.code == 1 and f"unsafe-segment: run {victim}: {seg}" in verify.out
    assert repair.code == 0 and "quarantined" in repair.out and not seg.exists()
    assert after.code == 0


def test_real_zstd_and_parquet_bombs_beyond_the_ratio(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real files that decode to far more than their size (here, with the floor lowered to
    1 MiB, a few KB decoding to 32 MB) are refused by every reader and named by verify."""
    monkeypatch.setattr(file_checks, "DECODED_FLOOR_BYTES", 1 << 20)
    raw = _zstd_segment(1_000_000)
    assert len(raw) * file_checks.DECODED_RATIO < 32_000_000
    seg = tmp_path / "0000000000000001-1-aaaaaa-000001.arrows"
    seg.write_bytes(raw)
    with pytest.raises(UnsafeFileError, match="would decode to 32,000,000 bytes"):
        read_segment(seg)
    root = tmp_path / "repo"
    victim = small_run(root, n=1)
    run = aim.Run(victim, repo=root, **QUIET)  # type: ignore[arg-type]
    for i in range(1, 1_000_000, 1000):  # a long constant metric compacts very well...
        run._writer.seqs[next(iter(run._writer.seqs))].points.extend(  # (bulk, for speed)
            [v for s in range(i, i + 1000) for v in (s, 0.0, None, 1.0)]  # (a list: one atomic
        )  # extend, as track() makes; a generator let the flusher take half a point)
    run.close()
    compact_run(RepoLayout(root), victim, rewrite_all=True)
    metrics = next(run_dir(root, victim).glob("compacted/metrics-*.parquet"))
    assert metrics.stat().st_size * file_checks.DECODED_RATIO < 1_000_000 * 32
    report = verify_repo(RepoLayout(root))  # ... beyond the (lowered) ratio: refused
    assert [p.kind for p in report.problems] == ["unreadable-compacted"]
    assert "would decode to" in report.problems[0].detail


# -- newer format versions: reported, never read, never rewritten --------------------------------


def _with_version(table_or_schema_meta: dict[bytes, bytes], version: bytes) -> dict[bytes, bytes]:
    return {**table_or_schema_meta, b"aim_parquet.format_version": version}


def test_newer_format_files_are_reported_and_never_rewritten(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    parquet_v2, segment_v2, manifest_v2, healthy = (small_run(root) for _ in range(4))
    layout = RepoLayout(root)
    for run_hash in (parquet_v2, manifest_v2):
        compact_run(layout, run_hash, rewrite_all=True)
        small_run_resume(root, run_hash)  # fresh segments the compactor would take next
    metrics = next(run_dir(root, parquet_v2).glob("compacted/metrics-*.parquet"))
    pf = pq.ParquetFile(metrics)
    table, footer = pf.read(), _with_version(pf.metadata.metadata, b"2")
    with pq.ParquetWriter(metrics, table.schema, store_schema=False) as writer:
        writer.add_key_value_metadata({k.decode(): v.decode() for k, v in footer.items()})
        writer.write_table(table)
    seg = first_segment(root, segment_v2)
    data = read_segment(seg)
    sink = pa.BufferOutputStream()
    schema = data.schema.with_metadata(_with_version(data.schema.metadata, b"2"))
    with pa.ipc.new_stream(sink, schema) as writer:
        for batch in data.batches:
            writer.write_batch(batch)
    seg.write_bytes(sink.getvalue().to_pybytes())
    manifest = run_dir(root, manifest_v2) / "compacted" / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"format_version": 1', '"format_version": 2'))
    with pytest.raises(FormatVersionError, match="newer"):
        read_segment(seg)
    before = tree_digest(root / ".aim" / "runs")
    r = ["--repo", str(root)]
    query, verify, compact, repair, gc = run_forked(
        [
            ["query", "metric.name == 'loss'", *r],
            ["verify", *r],
            ["compact", "--rewrite-all", "--verbose", *r],
            ["verify", "--repair", *r],
            ["gc", "--grace-s", "0", *r],
        ]
    )
    after = tree_digest(root / ".aim" / "runs")
    for run_hash in (parquet_v2, segment_v2, manifest_v2):  # not one byte of data changed
        assert {k: v for k, v in after.items() if k.startswith(run_hash) and "lock" not in k} == {
            k: v for k, v in before.items() if k.startswith(run_hash) and "lock" not in k
        }
        assert f"run {run_hash}" in query.err
    assert query.code == 0 and healthy in query.out and "newer" in query.err
    assert verify.code == 1 and verify.out.count("future-format:") == 3
    assert f"future-format: run {parquet_v2}: {metrics}" in verify.out
    assert compact.code == 0 and compact.out.count("skipped") >= 3 and "Upgrade" in compact.out
    assert repair.code == 1 and repair.out.count("upgrade it") == 3
    assert gc.code == 0


def small_run_resume(root: Path, run_hash: str, n: int = 10) -> None:
    with aim.Run(run_hash, repo=root, **QUIET) as run:  # type: ignore[arg-type]
        for _ in range(n):
            run.track(1.0, name="loss")


# -- columns of the wrong type ------------------------------------------------------------------


def test_columns_of_the_wrong_type_are_damage_of_one_run(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    bad_segment, bad_parquet, healthy = small_run(root), small_run(root), small_run(root)
    seg = first_segment(root, bad_segment)
    data = read_segment(seg)
    fields = [pa.field(f.name, pa.string() if f.name == "value" else f.type) for f in data.schema]
    schema = pa.schema(fields, metadata=data.schema.metadata)
    strings = data.batches[0].column(1).cast(pa.string())
    batch = pa.record_batch([*data.batches[0].columns[:1], strings, *data.batches[0].columns[2:]],
                            schema=schema)  # fmt: skip
    extra = seg.with_name("ffffffffffffffff-1-aaaaaa-000001.arrows")
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as writer:
        writer.write_batch(batch)
    extra.write_bytes(sink.getvalue().to_pybytes())
    compact_run(RepoLayout(root), bad_parquet, rewrite_all=True)
    metrics = next(run_dir(root, bad_parquet).glob("compacted/metrics-*.parquet"))
    table = pq.read_table(metrics)
    table = table.set_column(7, "value", table.column("value").cast(pa.string()))
    pq.write_table(table.replace_schema_metadata(pq.read_metadata(metrics).metadata), metrics)
    ls, query, stats, export, verify, gc, compact = run_forked(repo_wide(root, tmp_path))
    assert query.code == 0 and healthy in query.out
    for victim in (bad_segment, bad_parquet):
        assert f"skipping damaged run {victim}" in query.err
        assert f"leaves out run {victim}" in export.err
    assert "column 'value' is of type string" in query.err
    assert export.code == 0 and ls.code == 0 and stats.code == 0 and gc.code == 0
    assert verify.code == 1 and f"invalid-segment: run {bad_segment}: {extra}" in verify.out
    assert f"unreadable-compacted: run {bad_parquet}: {metrics}" in verify.out
    assert compact.code == 0 and "skipped unreadable segment" in compact.out


# -- a lost segment while others of the sequence are left ----------------------------------------


def test_a_lost_segment_among_others_is_reported_and_the_catalogue_fixed(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    run_hash = small_run(root, n=100)
    small_run_resume(root, run_hash, 100)
    small_run_resume(root, run_hash, 100)
    segments = sorted(run_dir(root, run_hash).glob("seqs/*/*.arrows"))
    assert len(segments) == 3
    segments[1].unlink()
    r = ["--repo", str(root)]
    ls, verify, repair, ls_after, verify_after = run_forked(
        [["runs", "ls", "--json", *r], ["verify", *r], ["verify", "--repair", *r],
         ["runs", "ls", "--json", *r], ["verify", *r]]
    )  # fmt: skip
    assert json.loads(ls.out)[0]["points"] == 300
    assert verify.code == 1
    assert f"missing-data: run {run_hash}" in verify.out and "'loss' counts 300, 200 readable" in (
        verify.out
    )
    assert repair.code == 0 and "catalogue rebuilt" in repair.out
    assert json.loads(ls_after.out)[0]["points"] == 200 and verify_after.code == 0


# -- a crafted run index -------------------------------------------------------------------------


def _rewrite_index(path: Path, change_column: Any = None, change_keys: Any = None) -> None:
    """Rewrite runs.arrow with `change_column(table)` (a table back) and
    `change_keys(run_hash, keys)` (each run's catalogue keys) applied, keeping every other column
    (a crafted file that still looks well-formed)."""
    table = pa.ipc.open_file(pa.BufferReader(path.read_bytes())).read_all()
    if change_keys is not None:
        keys = [
            json.dumps(change_keys(h, json.loads(k)), separators=(",", ":"))
            for h, k in zip(
                table.column("hash").to_pylist(),
                table.column("catalogue_keys").to_pylist(),
                strict=True,
            )
        ]
        at = table.schema.get_field_index("catalogue_keys")
        table = table.set_column(at, "catalogue_keys", pa.array(keys, pa.string()))
    if change_column is not None:
        table = change_column(table)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    path.write_bytes(sink.getvalue().to_pybytes())


def _first(table: pa.Table, name: str, value: Any, typ: pa.DataType | None = None) -> pa.Table:
    """`table` with the first run's `name` set to `value` (the column retyped to `typ`)."""
    column = table.column(name).to_pylist()
    if typ is not None:  # (the other cells as text, or empty, as a crafted file might hold)
        column = [json.dumps(v) if typ == pa.string() else None for v in column]
    column[0] = value
    at = table.schema.get_field_index(name)
    typ = typ or table.schema.field(name).type
    return table.set_column(at, pa.field(name, typ), pa.array(column, typ))


CRAFTED = {
    "time is an object": dict(
        change_column=lambda t: _first(t, "creation_time", '{"x": 1}', pa.string())
    ),
    "hash escapes the repository": dict(
        change_column=lambda t: _first(t, "hash", "../../../../tmp/evil")
    ),
    "tags are numbers": dict(
        change_column=lambda t: _first(t, "tags", [1, 2], pa.list_(pa.int64()))
    ),
    "other fields are numbers": dict(
        change_column=lambda t: _first(t, "fields", '{"tags": [1, 2], "archived": 3}')
    ),
    "context is a list": dict(change_keys=lambda h, keys: [[*k[:3], [], *k[4:]] for k in keys]),
    "seq id escapes": dict(change_keys=lambda h, keys: [["../x", *k[1:]] for k in keys]),
}


@pytest.mark.parametrize("craft", list(CRAFTED), ids=list(CRAFTED))
def test_a_crafted_run_index_breaks_nothing(tmp_path: Path, craft: str) -> None:
    root = tmp_path / "repo"
    hashes = sorted(small_run(root) for _ in range(2))
    RunIndex(RepoLayout(root)).refresh()
    _rewrite_index(root / ".aim" / "index" / "runs.arrow", **CRAFTED[craft])
    r = ["--repo", str(root)]
    verify, ls, query, repair = run_forked(
        [["verify", *r], ["runs", "ls", "--json", *r], ["query", "metric.name == 'loss'", *r],
         ["verify", "--repair", *r]]
    )  # fmt: skip
    assert ls.code == 0 and sorted(row["hash"] for row in json.loads(ls.out)) == hashes
    assert query.code == 0 and "(100 rows)" in query.out, query.err
    assert verify.code == 1 and "damaged-index" in verify.out
    assert repair.code == 0
    assert not list(tmp_path.rglob("evil"))
    shutil.rmtree(root)


def test_repository_files_as_links_or_fifos(tmp_path: Path) -> None:
    """The change marker linked outside is never touched through the link; a FIFO as the
    repository marker stops nothing from hanging and `verify --repair` replaces it."""
    root = tmp_path / "repo"
    small_run(root)
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    old = 1_000_000_000
    os.utime(outside, (old, old))
    marker = root / ".aim" / "index" / "changed"
    marker.unlink(missing_ok=True)
    marker.symlink_to(outside)
    small_run(root)  # touches the change marker
    assert outside.stat().st_mtime == old and outside.read_text() == "precious"
    (root / ".aim" / "aim_parquet.json").unlink()
    os.mkfifo(root / ".aim" / "aim_parquet.json")
    r = ["--repo", str(root)]
    ls, repair, after = run_forked(
        [["runs", "ls", *r], ["verify", "--repair", *r], ["runs", "ls", *r]]
    )
    assert ls.code == 1 and "FIFO" in ls.err and len(ls.err.splitlines()) == 1
    assert "invalid-marker" in repair.out and "symlink: repository" in repair.out
    assert after.code == 0 and len(after.out.splitlines()) == 3


# hostile files, links or changes each test plants (tools/fault_report.py adds them up)
PLANTED = {
    "test_linked_trash_is_never_emptied_and_verify_names_it": 1,
    "test_linked_lock_files_are_never_truncated": 2,
    "test_segment_linked_to_dev_zero_is_refused_not_read": 1,
    "test_fifos_hang_no_command_and_repair_moves_them_aside": 3,
    "test_deeply_nested_sidecar_is_one_damaged_run": 1,
    "test_deeply_nested_manifest_and_index_are_rebuilt": 2,
    "test_zstd_segment_claiming_gigabytes_is_refused_before_decoding": 1,
    "test_real_zstd_and_parquet_bombs_beyond_the_ratio": 2,
    "test_newer_format_files_are_reported_and_never_rewritten": 3,
    "test_columns_of_the_wrong_type_are_damage_of_one_run": 2,
    "test_a_lost_segment_among_others_is_reported_and_the_catalogue_fixed": 1,
    "test_repository_files_as_links_or_fifos": 2,
    **{f"test_a_crafted_run_index_breaks_nothing[{craft}]": 1 for craft in CRAFTED},
}


def test_planted_counts_name_every_test() -> None:
    tests = {
        name
        for name in globals()
        if name.startswith("test_") and name != "test_planted_counts_name_every_test"
    }
    assert {name.split("[")[0] for name in PLANTED} == tests
