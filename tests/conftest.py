"""Shared fixtures: cheap temp repos and an independent pyarrow reader of segment files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def python_sigint() -> Iterator[None]:
    """Python's own SIGINT handler (KeyboardInterrupt) for the test, as an interactive or
    foreground process has it: a suite started in the background (`cmd &`, nohup) inherits
    SIGINT ignored, and a test that sends itself a real SIGINT would then see nothing."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.fixture
def repo_root(tmp_path: Path) -> Path:
    """An empty folder to use as `repo=` (the `.aim` inside is created on first use)."""
    return tmp_path


@pytest.fixture
def make_run(repo_root: Path) -> Iterator[Any]:
    """A factory for quiet runs (no system sampler, no stdout capture), closed at teardown."""
    import aim_parquet as aim

    runs: list[Any] = []

    def factory(**kwargs: Any) -> Any:
        kwargs.setdefault("repo", repo_root)
        kwargs.setdefault("system_tracking_interval", None)
        kwargs.setdefault("capture_terminal_logs", False)
        run = aim.Run(**kwargs)
        runs.append(run)
        return run

    yield factory
    for run in runs:
        run.close()


def raw_points(root: Path, run_hash: str) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Every point of a run read with plain pyarrow from the segment files (not our reader).

    Returns {(name, canonical context JSON): [row dicts in write order]}; a torn last message
    of a segment is skipped, as FORMAT.md tells readers to do.
    """
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    seqs = root / ".aim" / "runs" / run_hash / "seqs"
    if not seqs.is_dir():
        return out
    for seq_dir in sorted(seqs.iterdir()):
        for seg in sorted(seq_dir.glob("*.arrows")):
            schema, batches = segment_batches(seg)
            meta = schema.metadata
            key = (meta[b"aim_parquet.name"].decode(), meta[b"aim_parquet.context"].decode())
            rows = out.setdefault(key, [])
            for batch in batches:
                rows.extend(batch.to_pylist())
    return out


def segment_batches(path: Path) -> tuple[pa.Schema, list[pa.RecordBatch]]:
    """A segment file (an Arrow IPC stream) read with plain pyarrow: its schema and its whole
    record batches, a torn last message skipped, as FORMAT.md tells readers to do."""
    batches: list[pa.RecordBatch] = []
    with pa.OSFile(str(path)) as f:
        reader = pa.ipc.open_stream(f)
        while True:
            try:
                batches.append(reader.read_next_batch())
            except StopIteration:
                break
            except (pa.ArrowInvalid, OSError):
                break  # a torn tail
        return reader.schema, batches


def sidecar(root: Path, run_hash: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((root / ".aim" / "runs" / run_hash / "run.json").read_text())
    return data


def read_index_table(root: Path) -> pa.Table:
    """The run index file (`.aim/index/runs.arrow`) of the repository at `root`, read with plain
    pyarrow."""
    from aim_parquet.format.paths import RepoLayout

    return pa.ipc.open_file(pa.BufferReader(RepoLayout(root).index_file.read_bytes())).read_all()


def with_index_column(table: pa.Table, column: str, values: list[Any]) -> pa.Table:
    """`table` with `values` in place of the column `column` (of the same type)."""
    at = table.schema.get_field_index(column)
    return table.set_column(
        at, table.schema.field(at), pa.array(values, table.schema.field(at).type)
    )


def write_index_table(root: Path, table: pa.Table) -> None:
    """Replaces the run index file of the repository at `root` with `table` (a test's edit,
    written with plain pyarrow) and makes this process forget the indexes it shares, as a fresh
    process would have none."""
    from aim_parquet.format.paths import RepoLayout
    from aim_parquet.storage.index.run_index import RunIndex

    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    RepoLayout(root).index_file.write_bytes(sink.getvalue().to_pybytes())
    RunIndex._shared.clear()


def python_env() -> dict[str, str]:
    """Environment for subprocesses that import aim_parquet from this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


PYTHON = sys.executable


def source_at(rev: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding `rev`'s aim_parquet, from this checkout's git history (the test is
    skipped where there is none): older code that writes older repositories."""
    done = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "aim_parquet"], capture_output=True
    )
    if done.returncode:
        pytest.skip(f"no git history with {rev}: {done.stderr.decode()[:200]}")
    dest = tmp_path_factory.mktemp(f"code_{rev}")
    with tarfile.open(fileobj=BytesIO(done.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def repo_by_old_code(
    rev: str, script: str, tmp_path_factory: pytest.TempPathFactory, name: str, *args: str
) -> tuple[Path, str]:
    """A repository made by `script` (Python source; its arguments: the repository's folder,
    then `args`) run in a fresh process with `rev`'s aim_parquet (`source_at`; skipped where
    there is no history): (the folder, what the script printed). The script is saved next to
    the folder, as `make_<name>.py`."""
    code = source_at(rev, tmp_path_factory)
    root = tmp_path_factory.mktemp(name)
    path = root.parent / f"make_{name}.py"
    path.write_text(script)
    env = {**os.environ, "PYTHONPATH": str(code)}
    done = subprocess.run(
        [PYTHON, str(path), str(root), *args], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return root, done.stdout
