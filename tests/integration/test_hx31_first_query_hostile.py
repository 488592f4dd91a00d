"""hx31: the first query of a repository without `.aim/index` (run rows decoded straight from the
sidecars, `storage.index.sidecar_cells`) over hostile sidecars: a link, a FIFO, a folder, an
empty, truncated, non-UTF-8 or huge (sparse) file, JSON nested past the parser's depth, numbers
past the integer-text limit, escaped lone surrogates. Nothing hangs, each unreadable run is
reported (named in a warning and by `list_corrupted_runs`) and left out, and every other run is
answered as it was before, also by three threads sharing the Repo of a new process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import aim_parquet as aim

QUIET: dict[str, Any] = {
    "system_tracking_interval": None,
    "capture_terminal_logs": False,
    "log_system_params": False,
}
BIG = b"1180591620717411303424"  # (2**70, as the sidecar writes it)


def _replace(old: bytes, new: bytes) -> Any:
    return lambda text: text.replace(old, new)


DAMAGE = {  # how a sidecar is spoiled -> whether the run is still read
    "truncated": (lambda text: text[: len(text) // 2], False),
    "empty": (lambda text: b"", False),
    "not utf-8": (_replace(b"\\u00e9", b"\xff\xfe"), True),  # (read, the bytes replaced)
    "lone surrogate": (_replace(b"\\u00e9", b"\\ud800"), True),
    "4,200 digits": (_replace(BIG, b"1" + b"0" * 4200), True),
    "5,000 digits": (_replace(BIG, b"1" + b"0" * 5000), False),
    "1e400": (_replace(BIG, b"1e400"), True),
    "depth 100,000": (_replace(BIG, b"[" * 100_000 + b"]" * 100_000), False),
    "trailing garbage": (lambda text: text + b"{}", False),
}
SPECIAL = ["link", "fifo", "folder", "huge"]


def test_the_first_query_over_hostile_sidecars(tmp_path: Path) -> None:
    root = str(tmp_path)
    hashes = []
    for i in range(len(DAMAGE) + len(SPECIAL) + 6):
        with aim.Run(repo=root, **QUIET) as run:
            run["hp"] = {"s": "\u00e9", "big": 2**70}
            run.track(0.5 * i, name="loss", step=0, context={"i": i % 3})
            if i % 2:
                run.track(1, name="epoch", step=0)  # (ints: a catalogue outside the columns)
            hashes.append(run.hash)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        before = {
            (m.run.hash, json.dumps(dict(m.context))): m.values.tolist()
            for m in aim.Repo(root).query_metrics("metric.name == 'loss'")
        }
    sidecar = {h: tmp_path / ".aim" / "runs" / h / "run.json" for h in hashes}
    lost = set()
    for h, (spoil, read) in zip(hashes, DAMAGE.values(), strict=False):
        sidecar[h].write_bytes(spoil(sidecar[h].read_bytes()))
        if not read:
            lost.add(h)
    link, fifo, folder, huge = hashes[len(DAMAGE) : len(DAMAGE) + len(SPECIAL)]
    sidecar[link].unlink()
    sidecar[link].symlink_to(sidecar[hashes[-1]])
    sidecar[fifo].unlink()
    os.mkfifo(sidecar[fifo])
    sidecar[folder].unlink()
    sidecar[folder].mkdir()
    os.truncate(sidecar[huge], (256 << 20) + 1)  # (sparse: past MAX_JSON_FILE_BYTES)
    lost |= {link, fifo, folder, huge}

    expected = {json.dumps(key): values for key, values in before.items() if key[0] not in lost}
    for threads in (0, 3):  # (each a first query in a new process: the index is per process)
        shutil.rmtree(tmp_path / ".aim" / "index", ignore_errors=True)
        done = subprocess.run(
            [sys.executable, "-c", FIRST_QUERY, root, str(threads)],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        answers = json.loads(done.stdout)
        assert len(answers) == max(threads, 1)
        for got, reported, warned in answers:
            assert got == expected
            assert sorted(reported) == sorted(lost)
            assert threads or sorted(warned) == sorted(lost)  # (each one named in a warning)


FIRST_QUERY = """
import json, sys, threading, warnings
import aim_parquet as aim
root, threads = sys.argv[1], int(sys.argv[2])
out = []
shared = aim.Repo(root) if threads else None  # (made before the threads start)
def answer():
    with warnings.catch_warnings(record=True) as caught:
        if threads:
            warnings.simplefilter("ignore")  # (catch_warnings is not for threads)
        else:
            warnings.simplefilter("always")
        repo = shared or aim.Repo(root)
        got = {
            json.dumps((m.run.hash, json.dumps(dict(m.context)))): m.values.tolist()
            for m in repo.query_metrics("metric.name == 'loss'")
        }
    warned = sorted({w.message.args[0].split()[4].rstrip(":") for w in caught})
    out.append((got, repo.list_corrupted_runs(), warned))
if threads:
    workers = [threading.Thread(target=answer) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
else:
    answer()
print(json.dumps(out))
"""
