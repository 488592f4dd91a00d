"""`aim-parquet convert` end to end on sources built here byte by byte (no tracker installed):
counts, idempotency, --dry-run, --update, an interrupted conversion redone, corrupt records,
one-line errors. The same commands on files written by the real trackers: tests/converters."""

from __future__ import annotations

import json
import math
import sqlite3
import struct
from pathlib import Path
from typing import Any

import pytest

import aim_parquet as aim
from aim_parquet.convert.engine import SOURCE_PARAM
from aim_parquet.sdk.run_import import ImportRun
from tests.convert_helpers import convert_cli, ctx_key, read_converted, write_scalar_file


def _f32(value: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", value))[0])


def _logdir(root: Path) -> Path:
    logdir = root / "logs"
    write_scalar_file(
        logdir / "exp" / "train" / "events.out.tfevents.1.a",
        [(100.0 + s, s, "loss", 1 / (s + 1)) for s in range(50)],
    )
    write_scalar_file(
        logdir / "exp" / "validation" / "events.out.tfevents.1.b",
        [(100.5 + s, s * 10, "loss", 2 / (s + 1)) for s in range(5)],
    )
    write_scalar_file(
        logdir / "other" / "events.out.tfevents.1.c",
        [(200.0 + s, s, tag, s * 0.1) for s in range(20) for tag in ("acc", "lr")],
    )
    return logdir


def test_tensorboard_convert_dry_run_idempotent_update(tmp_path: Path) -> None:
    logdir = _logdir(tmp_path)
    dest = tmp_path / "dest"
    dry = convert_cli("tensorboard", str(logdir), "--repo", str(dest), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would convert" in dry.stdout and "total (2 runs)" in dry.stdout
    assert " 95 " in dry.stdout.splitlines()[-4]  # the total row: 50 + 5 + 40 points
    assert "source runs: 2 would convert" in dry.stdout.splitlines()[-3]
    assert not (dest / ".aim").exists()

    first = convert_cli("tensorboard", str(logdir), "--repo", str(dest), "--experiment", "tb")
    assert first.returncode == 0, first.stderr
    plain = first.stderr.splitlines()  # periodic plain progress lines, not one per run
    assert [line.split(" runs,")[0] for line in plain] == [
        "converting tensorboard: 1/2",
        "converting tensorboard: 2/2",
    ]
    assert "[1/2]" not in first.stdout and " exp " not in first.stdout  # no line per run
    runs = read_converted(dest)
    assert sorted(runs) == ["exp", "other"]
    exp = runs["exp"]
    assert exp.experiment == "tb"
    kind, steps, values, epochs, times = exp.sequences[("loss", ctx_key({"subset": "train"}))]
    assert steps == list(range(50))
    assert values == [_f32(1 / (s + 1)) for s in range(50)]
    assert times == [100.0 + s for s in range(50)] and epochs == [None] * 50
    _, steps, values, _, _ = exp.sequences[("loss", ctx_key({"subset": "validation"}))]
    assert steps == [0, 10, 20, 30, 40] and values == [_f32(2 / (s + 1)) for s in range(5)]
    assert exp.creation_time == 100.0 and exp.end_time == 149.0
    assert exp.params[SOURCE_PARAM]["complete"] is True
    assert exp.params[SOURCE_PARAM]["id"] == str((logdir / "exp").resolve())

    again = convert_cli("tensorboard", str(logdir), "--repo", str(dest))
    assert again.returncode == 0, again.stderr
    assert "source runs: 2 up to date" in again.stdout and " exp " not in again.stdout
    verbose = convert_cli("tensorboard", str(logdir), "--repo", str(dest), "--verbose")
    assert verbose.returncode == 0, verbose.stderr
    assert "[1/2] exp\n[2/2] other\n" in verbose.stdout  # one line per source run
    assert verbose.stdout.count("up to date") == 3  # every run's row, and the status count
    assert len(aim.Repo(dest).list_all_runs()) == 2

    write_scalar_file(logdir / "other" / "events.out.tfevents.2.c", [(300.0, 20, "acc", 5.0)])
    changed = convert_cli("tensorboard", str(logdir), "--repo", str(dest))
    assert changed.returncode == 1
    assert "changed" in changed.stdout and "--update" in changed.stdout
    updated = convert_cli("tensorboard", str(logdir), "--repo", str(dest), "--update")
    assert updated.returncode == 0, updated.stderr
    assert "replaced" in updated.stdout
    runs_after = read_converted(dest)
    assert sorted(runs_after) == ["exp", "other"]
    assert runs_after["other"].hash != runs["other"].hash
    assert runs_after["exp"].hash == runs["exp"].hash
    _, steps, values, _, _ = runs_after["other"].sequences[("acc", ctx_key({}))]
    assert steps == list(range(21)) and values[-1] == 5.0


def test_tensorboard_corrupt_record_is_skipped_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "run" / "events.out.tfevents.1"
    offsets = write_scalar_file(path, [(10.0 + s, s, "loss", float(s)) for s in range(30)])
    data = bytearray(path.read_bytes())
    data[offsets[7] + 14] ^= 0xFF
    path.write_bytes(bytes(data[:-3]))  # and the last record torn
    result = convert_cli("tensorboard", str(tmp_path / "logs"), "--repo", str(tmp_path / "d"))
    assert result.returncode == 1
    assert "wrong CRC" in result.stdout and "ends inside a record" in result.stdout
    run = read_converted(tmp_path / "d")["run"]
    _, steps, values, _, _ = run.sequences[("loss", ctx_key({}))]
    assert steps == [s for s in range(29) if s != 7] and values == [float(s) for s in steps]


def test_interrupted_conversion_is_redone(tmp_path: Path) -> None:
    logdir = _logdir(tmp_path)
    dest = tmp_path / "dest"
    stale = ImportRun(repo=dest, experiment="tb")
    stale[SOURCE_PARAM] = {
        "tracker": "tensorboard",
        "id": str((logdir / "other").resolve()),
        "fingerprint": "x",
        "complete": False,
    }
    stale.track_points("acc", [0], [0.5], timestamps=[1.0])
    stale.close()
    result = convert_cli("tensorboard", str(logdir), "--repo", str(dest))
    assert result.returncode == 0, result.stderr
    hashes = aim.Repo(dest).list_all_runs()
    assert len(hashes) == 2 and stale.hash not in hashes


def _mlruns(root: Path) -> Path:
    store = root / "mlruns"
    exp = store / "1"
    run = exp / "0123abcd"
    for sub in ("metrics/train", "params/opt", "tags"):
        (run / sub).mkdir(parents=True)
    (exp / "meta.yaml").write_text(
        "artifact_location: file:///x\nexperiment_id: '1'\nlifecycle_stage: active\nname: fine-tune\n"
    )
    (run / "meta.yaml").write_text(
        "artifact_uri: file:///x/1/0123abcd/artifacts\nend_time: 1700000009000\n"
        "experiment_id: '1'\nlifecycle_stage: active\nrun_id: 0123abcd\nrun_name: first\n"
        "start_time: 1700000000000\nstatus: 3\ntags: []\nuser_id: me\n"
    )
    (run / "metrics" / "train" / "loss").write_text(
        "1700000001000 0.5 0\n1700000002000 nan 1\n1700000003000 inf 2\n"
    )
    (run / "metrics" / "acc").write_text(
        "1700000001000 0.1 0\n1700000002000 0.2 0\n1700000000500 0.3 0\n"
    )
    (run / "params" / "lr").write_text("0.01")
    (run / "params" / "opt" / "name").write_text("adam")
    (run / "tags" / "team").write_text("vision")
    (run / "tags" / "mlflow.note.content").write_text("a note\nwith two lines")
    gone = exp / "deadbeef"
    gone.mkdir()
    (gone / "meta.yaml").write_text("run_id: deadbeef\nlifecycle_stage: deleted\nstatus: 3\n")
    return store


def test_mlflow_file_store_by_hand(tmp_path: Path) -> None:
    store = _mlruns(tmp_path)
    result = convert_cli("mlflow", str(store), "--repo", str(tmp_path / "d"))
    assert result.returncode == 0, result.stdout + result.stderr
    runs = read_converted(tmp_path / "d")
    assert sorted(runs) == ["first"]
    run = runs["first"]
    assert run.experiment == "fine-tune" and run.description == "a note\nwith two lines"
    assert run.params["params"] == {"lr": "0.01", "opt/name": "adam"}
    assert run.params["tags"] == {"team": "vision"}
    assert run.params["mlflow"]["status"] == "FINISHED"
    assert run.params["mlflow"]["renumbered_metrics"] == ["acc"]
    assert (run.creation_time, run.end_time) == (1700000000.0, 1700000009.0)
    _, steps, values, epochs, times = run.sequences[("train/loss", ctx_key({}))]
    assert steps == [0, 1, 2] and values[0] == 0.5 and math.isnan(values[1])
    assert values[2] == math.inf and times == [1700000001.0, 1700000002.0, 1700000003.0]
    # three points at step 0: numbered in timestamp order, the MLflow step kept as the epoch
    _, steps, values, epochs, times = run.sequences[("acc", ctx_key({}))]
    assert steps == [0, 1, 2] and values == [0.3, 0.1, 0.2] and epochs == [0, 0, 0]
    assert times == [1700000000.5, 1700000001.0, 1700000002.0]


def test_mlflow_sqlite_by_hand(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    con = sqlite3.connect(db)
    con.executescript(
        """
        create table experiments (experiment_id integer, name text, lifecycle_stage text);
        create table runs (run_uuid text, name text, status text, start_time integer,
            end_time integer, lifecycle_stage text, experiment_id integer, user_id text,
            artifact_uri text);
        create table metrics (key text, value float, timestamp integer, run_uuid text,
            step integer, is_nan boolean);
        create table params (key text, value text, run_uuid text);
        create table tags (key text, value text, run_uuid text);
        insert into experiments values (0, 'Default', 'active'), (1, 'old', 'deleted');
        insert into runs values ('r1', 'one', 'FAILED', 1000, null, 'active', 0, 'me', 'a'),
            ('r2', 'two', 'FINISHED', 1000, 2000, 'active', 1, 'me', 'a');
        insert into metrics values ('m', 0, 1500, 'r1', 3, 1), ('m', 2.5, 1600, 'r1', 4, 0);
        insert into params values ('p', '1', 'r1');
        insert into tags values ('mlflow.runName', 'one', 'r1');
        """
    )
    con.commit()
    con.close()
    result = convert_cli("mlflow", f"sqlite:///{db}", "--repo", str(tmp_path / "d"))
    assert result.returncode == 0, result.stdout + result.stderr
    runs = read_converted(tmp_path / "d")
    assert sorted(runs) == ["one"]  # 'two' is in a deleted experiment
    one = runs["one"]
    assert one.params["mlflow"]["status"] == "FAILED" and "tags" not in one.params
    assert one.params["mlflow"]["tags"] == {"mlflow.runName": "one"}
    assert one.end_time == 1.6  # no end time: the newest point's
    _, steps, values, _, times = one.sequences[("m", ctx_key({}))]
    assert steps == [3, 4] and math.isnan(values[0]) and values[1] == 2.5 and times == [1.5, 1.6]


@pytest.mark.parametrize(
    ("kind", "source", "expected"),
    [
        ("tensorboard", "nope", "does not exist"),
        ("mlflow", "nope", "does not exist"),
        ("mlflow", "postgresql://db/mlflow", "offline"),
        ("aim", "nope", "no Aim repository"),
    ],
)
def test_missing_source_is_one_line_error(
    tmp_path: Path, kind: str, source: str, expected: str
) -> None:
    result = convert_cli(kind, source, "--repo", str(tmp_path / "d"), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aim-parquet: error:") and expected in lines[0]
    assert not (tmp_path / "d").exists()


def test_empty_logdir_and_foreign_target_are_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = convert_cli("tensorboard", str(tmp_path / "empty"), "--repo", str(tmp_path / "d"))
    assert result.returncode == 1 and "no TensorBoard event files" in result.stderr
    logdir = _logdir(tmp_path)
    (tmp_path / "aimrepo" / ".aim" / "meta").mkdir(parents=True)
    result = convert_cli("tensorboard", str(logdir), "--repo", str(tmp_path / "aimrepo"))
    assert result.returncode == 1 and "is not an aim_parquet repository" in result.stderr
    assert sorted(p.name for p in (tmp_path / "aimrepo" / ".aim").iterdir()) == ["meta"]


@pytest.mark.parametrize("kind", ["tensorboard", "mlflow", "aim"])
def test_help_has_an_example(kind: str) -> None:
    result = convert_cli(kind, "--help")
    assert result.returncode == 0
    assert f"aim-parquet convert {kind} " in result.stdout and "example" in result.stdout


def test_source_param_is_json(tmp_path: Path) -> None:
    logdir = _logdir(tmp_path)
    assert convert_cli("tensorboard", str(logdir), "--repo", str(tmp_path / "d")).returncode == 0
    for run in read_converted(tmp_path / "d").values():
        source = run.params[SOURCE_PARAM]
        assert json.loads(json.dumps(source)) == source
        assert set(source) == {"tracker", "id", "fingerprint", "complete", "converted_at"}


def test_tensorboard_bad_image_and_bool_tensor(tmp_path: Path) -> None:
    from tests.convert_helpers import field_bytes, field_double, field_varint, tfrecord

    def event(step: int, value: bytes) -> bytes:
        summary = field_bytes(1, value)
        return field_double(1, 50.0 + step) + field_varint(2, step) + field_bytes(5, summary)

    bad_image = field_bytes(1, b"pic") + field_bytes(4, field_bytes(4, b"not an image"))
    scalars = field_bytes(1, field_bytes(1, b"scalars"))
    flag = (
        field_bytes(1, b"flag")
        + field_bytes(9, scalars)
        + field_bytes(8, field_varint(1, 10) + field_bytes(2, b"") + field_bytes(11, b"\x01"))
    )
    path = tmp_path / "logs" / "run" / "events.out.tfevents.9"
    path.parent.mkdir(parents=True)
    path.write_bytes(tfrecord(event(1, bad_image)) + tfrecord(event(2, flag)))
    result = convert_cli("tensorboard", str(tmp_path / "logs"), "--repo", str(tmp_path / "d"))
    assert result.returncode == 1
    assert "pic: image value that cannot be decoded" in result.stdout
    assert "not an image Pillow can read (12 bytes starting b'not an i')" in result.stdout
    run = read_converted(tmp_path / "d")["run"]
    assert run.sequences[("flag", ctx_key({}))][1:3] == ([2], [1])
    assert ("pic", ctx_key({})) not in run.sequences


def test_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    import os
    import pty
    import subprocess
    import sys

    logdir = _logdir(tmp_path)
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "aim_parquet",
                "convert",
                "tensorboard",
                str(logdir),
                "--repo",
                str(tmp_path / "d"),
            ],
            stdout=subprocess.PIPE,
            stderr=follower,
            stdin=subprocess.DEVNULL,
            timeout=120,
        )
        os.close(follower)
        follower = -1
        drawn = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        if follower != -1:
            os.close(follower)
        os.close(leader)
    assert proc.returncode == 0
    assert b"\rconverting tensorboard [" in drawn and b"2/2" in drawn
    assert b"[1/2]" not in drawn  # no plain progress lines on a terminal


def test_destination_that_is_a_file_is_refused_before_reading(tmp_path: Path) -> None:
    logdir = _logdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    result = convert_cli("tensorboard", str(logdir), "--repo", str(tmp_path / "afile"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"aim-parquet: error: {tmp_path / 'afile'} is a file, not a folder; pass a folder with "
        "--repo DIR"
    ]
    assert (tmp_path / "afile").read_text() == "x"


def _histogram_event(wall: float, step: int, tag: str, counts: list[float]) -> bytes:
    from tests.convert_helpers import field_bytes, field_double, field_varint

    limits = [float(i + 1) for i in range(len(counts))]
    histo = (
        field_double(1, 0.0)
        + field_double(2, float(len(counts)))
        + field_double(3, sum(counts))
        + field_bytes(6, struct.pack(f"<{len(limits)}d", *limits))
        + field_bytes(7, struct.pack(f"<{len(counts)}d", *counts))
    )
    value = field_bytes(1, tag.encode()) + field_bytes(5, histo)
    return field_double(1, wall) + field_varint(2, step) + field_bytes(5, field_bytes(1, value))


def test_tensorboard_repeated_steps_and_mixed_kinds_keep_every_event(tmp_path: Path) -> None:
    """Every event is kept: a scalar logged without a step (all at step 0), a restart that logs
    steps again, negative steps, a histogram under a scalar's tag, an empty tag."""
    from tests.convert_helpers import tfrecord

    run = tmp_path / "logs" / "run"
    write_scalar_file(
        run / "events.out.tfevents.1.a", [(10.0 + i, 0, "nostep", i) for i in range(5)]
    )
    write_scalar_file(
        run / "events.out.tfevents.2.b",
        [(20.0 + s, s, "loss", s) for s in range(4)]
        + [(30.0 + s, s, "loss", 100 + s) for s in range(2, 6)]  # restarted at step 2
        + [(40.0, -3, "neg", 1.0), (41.0, 7, "neg", 2.0), (42.0, 1, "", 0.5)],
    )
    with open(run / "events.out.tfevents.2.b", "ab") as fh:
        for step in range(3):
            fh.write(tfrecord(_histogram_event(50.0 + step, step, "loss", [1.0, 2.0 + step])))
    result = convert_cli("tensorboard", str(tmp_path / "logs"), "--repo", str(tmp_path / "d"))
    assert result.returncode == 0, result.stdout + result.stderr
    converted = read_converted(tmp_path / "d")["run"]
    seqs = converted.sequences
    _, steps, values, epochs, times = seqs[("nostep", "{}")]
    assert (steps, values, epochs) == ([0, 1, 2, 3, 4], [0.0, 1.0, 2.0, 3.0, 4.0], [0] * 5)
    assert times == [10.0 + i for i in range(5)]
    _, steps, values, epochs, _ = seqs[("loss", "{}")]
    assert steps == list(range(8)) and epochs == [0, 1, 2, 3, 2, 3, 4, 5]
    assert values == [0.0, 1.0, 2.0, 3.0, 102.0, 103.0, 104.0, 105.0]
    _, steps, values, epochs, _ = seqs[("neg", "{}")]
    assert (steps, values, epochs) == ([0, 1], [1.0, 2.0], [-3, 7])
    assert seqs[("(empty tag)", "{}")][1:3] == ([1], [0.5])
    kind, steps, dists, epochs, times = seqs[("loss", ctx_key({"kind": "distribution"}))]
    assert steps == [0, 1, 2] and epochs == [None] * 3 and times == [50.0, 51.0, 52.0]
    assert [list(d.weights) for d in dists] == [[1.0, 2.0 + s] for s in range(3)]
    assert sorted(
        (r["name"], ctx_key(r["context"])) for r in converted.params["tensorboard"]["renumbered"]
    ) == [("loss", "{}"), ("neg", "{}"), ("nostep", "{}")]


def test_tensorboard_links_and_unreadable_places(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A linked run folder is followed (a link loop is not), a broken link named like an event
    file and a folder that cannot be listed are reported while the rest is converted, and an
    event file that cannot be opened fails its run before anything of it is written."""
    import os

    from aim_parquet.convert.engine import FAILED, convert_runs
    from aim_parquet.convert.tensorboard import find_runs

    logdir = tmp_path / "logs"
    write_scalar_file(tmp_path / "elsewhere" / "events.out.tfevents.1", [(1.0, 0, "acc", 0.5)])
    write_scalar_file(logdir / "ok" / "events.out.tfevents.1", [(1.0, 0, "acc", 0.25)])
    write_scalar_file(logdir / "locked" / "sub" / "events.out.tfevents.1", [(1.0, 0, "x", 1)])
    (logdir / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (logdir / "ok" / "loop").symlink_to(logdir, target_is_directory=True)
    (logdir / "ok" / "events.out.tfevents.2.broken").symlink_to(tmp_path / "nowhere")
    real_scandir = os.scandir

    def scandir(path: Any = ".") -> Any:
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    found = find_runs(logdir)
    assert [r.label for r in found.runs] == ["linked", "ok"]
    assert [p.split(": ")[1] for p in found.problems] == [
        "folder cannot be read (Permission denied); skipped",
        "a broken link or not a file; skipped",
    ]
    monkeypatch.undo()
    (unreadable,) = [r for r in found.runs if r.label == "ok"]
    real_open = open

    def locked_open(path: Any, *args: Any, **kwargs: Any) -> Any:
        if str(path).endswith("tfevents.1") and "/ok/" in str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    import builtins

    monkeypatch.setattr(builtins, "open", locked_open)
    report = convert_runs("tensorboard", str(logdir), found.runs, tmp_path / "d")
    monkeypatch.undo()
    statuses = {r.label: r.status for r in report.runs}
    assert statuses == {"linked": "converted", "ok": FAILED}
    assert "Permission denied" in (report.runs[1].message or "")
    assert [r.name for r in read_converted(tmp_path / "d").values()] == ["linked"]
    assert unreadable.source_id == str(logdir.resolve() / "ok")


def _small_mlflow_db(db: Path) -> None:
    con = sqlite3.connect(db)
    con.executescript(
        """
        create table experiments (experiment_id integer, name text, lifecycle_stage text);
        create table runs (run_uuid text, name text, status text, start_time integer,
            end_time integer, lifecycle_stage text, experiment_id integer, user_id text,
            artifact_uri text);
        create table metrics (key text, value float, timestamp integer, run_uuid text,
            step integer, is_nan boolean);
        create table params (key text, value text, run_uuid text);
        create table tags (key text, value text, run_uuid text);
        insert into experiments values (0, 'Default', 'active');
        insert into runs values ('r1', 'one', 'FINISHED', 1000, 5000, 'active', 0, 'me', 'a');
        insert into metrics values ('m', 1.0, 1500, 'r1', -2, 0), ('m', 2.0, 1600, 'r1', 5, 0),
            ('m', 3.0, 1700, 'r1', -1, 0);
        """
    )
    con.commit()
    con.close()


def test_mlflow_sqlite_path_with_uri_characters_is_read_and_left_alone(tmp_path: Path) -> None:
    """A path is not a URI: '#', '?' and '%' in it opened another (new, empty) database file."""
    sources = []
    for folder in ("with space", "hash#x", "query?x", "percent%41"):
        (tmp_path / folder).mkdir()
        _small_mlflow_db(tmp_path / folder / "mlflow.db")
        sources.append(str(tmp_path / folder / "mlflow.db"))
    sources.append(str(tmp_path / "hash#x"))  # the folder holding mlflow.db
    before = sorted(tmp_path.rglob("*"))
    for source in sources:
        result = convert_cli("mlflow", source, "--repo", str(tmp_path / "d"))
        assert result.returncode == 0, source + result.stdout + result.stderr
    assert sorted(p for p in tmp_path.rglob("*") if not p.is_relative_to(tmp_path / "d")) == before
    assert sorted(read_converted(tmp_path / "d")) == ["one"]  # the same MLflow run each time


def test_mlflow_negative_steps_are_kept(tmp_path: Path) -> None:
    """MLflow accepts negative steps: numbered like repeated steps, the MLflow step as epoch."""
    db = tmp_path / "mlflow.db"
    _small_mlflow_db(db)
    result = convert_cli("mlflow", str(db), "--repo", str(tmp_path / "d"))
    assert result.returncode == 0, result.stdout + result.stderr
    run = read_converted(tmp_path / "d")["one"]
    _, steps, values, epochs, times = run.sequences[("m", ctx_key({}))]
    assert (steps, values, epochs, times) == (
        [0, 1, 2],
        [1.0, 3.0, 2.0],
        [-2, -1, 5],
        [1.5, 1.7, 1.6],
    )
    assert run.params["mlflow"]["renumbered_metrics"] == ["m"]


def test_mlflow_database_left_mid_transaction_gets_a_clear_error(tmp_path: Path) -> None:
    """A writer killed mid-transaction leaves a hot journal that only a writer may roll back:
    say so (the source is only read, so it stays as it is)."""
    import os
    import signal
    import subprocess
    import sys

    db = tmp_path / "mlflow.db"
    _small_mlflow_db(db)
    script = (
        "import os, signal, sqlite3, sys\n"
        "con = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "con.execute('pragma cache_size=1')\n"
        "con.execute('begin')\n"
        "con.execute(\"insert into params select 'k' || value, zeroblob(5000), 'r1' from "
        "(with recursive c(value) as (select 1 union all select value + 1 from c "
        'where value < 400) select value from c)")\n'
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(db)], timeout=60)
    assert proc.returncode == -signal.SIGKILL
    journal = tmp_path / "mlflow.db-journal"
    assert journal.exists() and journal.stat().st_size > 0
    snapshot = (db.read_bytes(), journal.read_bytes())
    result = convert_cli("mlflow", str(db), "--repo", str(tmp_path / "d"))
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "stopped in the middle of a transaction" in line and "mlflow.db-journal" in line
    assert (db.read_bytes(), journal.read_bytes()) == snapshot
    assert not os.path.exists(tmp_path / "d" / ".aim" / "runs")
