"""Resume benchmark: opening a run whose writer was SIGKILLed after N points, in a fresh process.

usage: python tools/bench_resume.py [--points N] [--repeat R] [--keep DIR]

A writer process tracks N points of `loss` (auto-steps, the normal flusher), then tracks one more
flush and is SIGKILLed between that flush's segment write and its sidecar write (a wrapper it
installs around `RunWriter._write_sidecar` in its own process), so the sidecar misses a flush:
the case where the resume has to catch the catalogue up from the segments. Then, each in a fresh
process on a hard-linked copy of that repository (segments are append-only; sidecars are
replaced, never rewritten), median of R:

- `Run(run_hash=h)`: the resume, timed around the constructor (the import excluded);
- the same with the sidecar's `reach` keys removed (a sidecar of an earlier release): the
  catalogue is summarised from every point;
- a reader: a fresh `RunIndex.refresh()` (the run index scans the dead run) and the query
  `metric.last_step > N - 2` (must match).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

WRITE = textwrap.dedent(
    """
    import sys, threading, time
    import aim_parquet as aim
    from aim_parquet.storage.online import run_writer
    original = run_writer.RunWriter._write_sidecar
    armed = []
    def stop_then_write(self, *, durable):
        if armed and threading.current_thread() is threading.main_thread():
            print("gap", flush=True)
            time.sleep(600)
        original(self, durable=durable)
    run_writer.RunWriter._write_sidecar = stop_then_write
    run = aim.Run(repo=sys.argv[1], system_tracking_interval=None, capture_terminal_logs=False)
    print("hash", run.hash, flush=True)
    n = int(sys.argv[2])
    for i in range(n):
        run.track(i * 0.5, name="loss")
    run.flush()
    for i in range(n, n + 50_000):
        run.track(i * 0.5, name="loss")
    armed.append(True)
    run.flush()
    """
)

RESUME = textwrap.dedent(
    """
    import json, sys, time
    import aim_parquet as aim
    t0 = time.perf_counter()
    run = aim.Run(sys.argv[2], repo=sys.argv[1], system_tracking_interval=None,
                  capture_terminal_logs=False)
    seconds = time.perf_counter() - t0
    info = run.get_metric("loss").info
    run.close()
    print(json.dumps({"seconds": seconds, "count": info.count, "last_step": info.last_step}))
    """
)

READ = textwrap.dedent(
    """
    import json, sys, time
    import aim_parquet as aim
    from aim_parquet.format.paths import RepoLayout
    from aim_parquet.storage import RunIndex
    from pathlib import Path
    t0 = time.perf_counter()
    record = RunIndex(RepoLayout(Path(sys.argv[1]))).refresh().records[sys.argv[2]]
    index_s = time.perf_counter() - t0
    count = record.sequences[0].count
    t0 = time.perf_counter()
    found = list(aim.Repo(sys.argv[1]).query_metrics(sys.argv[3]).iter_runs())
    query_s = time.perf_counter() - t0
    print(json.dumps({"index_s": index_s, "query_s": query_s, "count": count,
                      "matches": len(found)}))
    """
)


def killed_run(repo: Path, points: int) -> str:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITE, str(repo), str(points)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    run_hash = proc.stdout.readline().split()[1]
    line = proc.stdout.readline()
    if line.strip() != "gap":
        proc.kill()
        raise SystemExit(f"the writer did not reach the gap: {line!r}")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    return run_hash


def linked_copy(src: Path, dest: Path, *, strip_reach: bool, run_hash: str) -> None:
    shutil.copytree(src, dest, copy_function=os.link)
    if strip_reach:
        sidecar = dest / ".aim" / "runs" / run_hash / "run.json"
        data = json.loads(sidecar.read_text())
        for entry in data["sequences"]:
            entry.pop("reach", None)
        sidecar.unlink()  # a hard link: replace it, never write through it
        sidecar.write_text(json.dumps(data))


def child(script: str, *args: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"a measuring process failed:\n{out.stderr}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None, help="build the run here and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aim-parquet-resume-") as tmp:
        base = args.keep or Path(tmp) / "repo"
        base.mkdir(parents=True, exist_ok=True)
        run_hash = killed_run(base, args.points)
        total = args.points + 50_000
        figures: dict[str, list[float]] = {"resume": [], "resume_no_reach": [], "index": []}
        query_s: list[float] = []
        for r in range(args.repeat):
            for key, strip in (("resume", False), ("resume_no_reach", True)):
                copy = Path(tmp) / f"{key}-{r}"
                linked_copy(base, copy, strip_reach=strip, run_hash=run_hash)
                out = child(RESUME, str(copy), run_hash)
                assert out["count"] == total and out["last_step"] == total - 1, out
                figures[key].append(out["seconds"])
                shutil.rmtree(copy)
            copy = Path(tmp) / f"read-{r}"
            linked_copy(base, copy, strip_reach=False, run_hash=run_hash)
            expr = f"metric.name == 'loss' and metric.last_step > {total - 2}"
            out = child(READ, str(copy), run_hash, expr)
            assert out["count"] == total and out["matches"] == 1, out
            figures["index"].append(out["index_s"])
            query_s.append(out["query_s"])
            shutil.rmtree(copy)
    med = {k: statistics.median(v) for k, v in figures.items()}
    print(f"run killed after {total:,} points, its sidecar one flush (50,000 points) behind:")
    print(f"  Run(run_hash=h), resume:                      {med['resume'] * 1e3:8.1f} ms")
    print(f"  the same, sidecar without reach (full read):  {med['resume_no_reach'] * 1e3:8.1f} ms")
    print(f"  fresh RunIndex.refresh() (scans the dead run): {med['index'] * 1e3:8.1f} ms")
    print(
        f"  then query metric.last_step > {total - 2:,}:     {statistics.median(query_s) * 1e3:8.1f} ms"
    )
    print(
        f"(median of {args.repeat}, fresh processes; command: python tools/bench_resume.py "
        f"--points {args.points} --repeat {args.repeat})"
    )


if __name__ == "__main__":
    main()
