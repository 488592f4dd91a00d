"""`aim-parquet convert` against a hostile or odd target and source: a link or FIFO as the
conversion lock, links and FIFOs planted in the target's runs, and a source folder whose name is
not UTF-8 (FORMAT.md, "Links, special files and bounds": nothing is followed out of `.aim/`,
run names are valid Unicode, names reach the terminal escaped)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import aim_parquet as aim
from tests.convert_helpers import convert_cli, write_scalar_file


def _logdir(root: Path) -> Path:
    logdir = root / "logs"
    write_scalar_file(
        logdir / "exp" / "events.out.tfevents.1.a",
        [(100.0 + s, s, "loss", 1 / (s + 1)) for s in range(30)],
    )
    return logdir


def test_a_linked_or_fifo_conversion_lock_is_refused_untouched(tmp_path: Path) -> None:
    logdir = _logdir(tmp_path)
    dest = tmp_path / "dest"
    aim.Repo(str(dest), init=True)
    precious = tmp_path / "precious"
    precious.write_text("keep me")
    lock = dest / ".aim" / "convert-tensorboard.lock"
    lock.symlink_to(precious)
    linked = convert_cli("tensorboard", str(logdir), "--repo", str(dest))
    assert linked.returncode == 1 and "is a symbolic link" in linked.stderr
    assert precious.read_text() == "keep me" and lock.is_symlink()
    lock.unlink()
    os.mkfifo(lock)
    fifo = convert_cli("tensorboard", str(logdir), "--repo", str(dest))  # (would hang if opened)
    assert fifo.returncode == 1 and "FIFO" in fifo.stderr
    assert aim.Repo(str(dest)).list_all_runs() == []
    lock.unlink()
    ok = convert_cli("tensorboard", str(logdir), "--repo", str(dest))
    assert ok.returncode == 0, ok.stderr
    assert len(aim.Repo(str(dest)).list_all_runs()) == 1


def test_converting_into_a_repository_with_links_fifos_and_a_dead_run(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    hashes = []
    for i in range(3):
        run = aim.Run(repo=str(dest), system_tracking_interval=None, capture_terminal_logs=False)
        run.track(float(i), name="loss", step=0)
        run.close()
        hashes.append(str(run.hash))
    runs = dest / ".aim" / "runs"
    seg = next((runs / hashes[0]).glob("seqs/*/*.arrows"))
    seg.unlink()
    seg.symlink_to("/dev/zero")
    seg = next((runs / hashes[1]).glob("seqs/*/*.arrows"))
    seg.unlink()
    os.mkfifo(seg)
    sidecar = runs / hashes[2] / "run.json"  # its writer died (no end_time), a FIFO segment
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "end_time": None}))
    seg = next((runs / hashes[2]).glob("seqs/*/*.arrows"))
    seg.unlink()
    os.mkfifo(seg)
    logdir = _logdir(tmp_path)
    first = convert_cli("tensorboard", str(logdir), "--repo", str(dest))
    assert first.returncode == 0, first.stderr
    again = convert_cli("tensorboard", str(logdir), "--repo", str(dest))
    assert again.returncode == 0 and "up to date" in again.stdout, again.stderr
    names = {r.name for r in aim.Repo(str(dest)).iter_runs()}
    assert "exp" in names and len(names) == 4


def test_a_source_folder_name_that_is_not_utf8(tmp_path: Path) -> None:
    logdir = _logdir(tmp_path)
    latin1 = os.fsdecode(os.fsencode(logdir) + b"/r\xe9sultats")  # 'résultats' in Latin-1
    write_scalar_file(Path(latin1) / "events.out.tfevents.1.b", [(100.0, 0, "acc", 0.5)])
    dest = tmp_path / "dest"
    first = convert_cli("tensorboard", str(logdir), "--repo", str(dest), "--verbose")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "r\\udce9sultats" in first.stdout  # the source's name, escaped: never raw bytes
    names = sorted(r.name for r in aim.Repo(str(dest)).iter_runs())
    assert names == ["exp", "r\ufffdsultats"]  # valid Unicode (U+FFFD where it is not UTF-8)
    again = convert_cli("tensorboard", str(logdir), "--repo", str(dest))
    assert again.returncode == 0 and "source runs: 2 up to date" in again.stdout, again.stdout
    listing = aim.Repo(str(dest))
    assert len(listing.list_all_runs()) == 2
