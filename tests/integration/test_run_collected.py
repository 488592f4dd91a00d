"""A `Run` dropped without `close()` is closed when it is garbage-collected, with Aim's defaults.

The README promises a close on garbage collection. With the default arguments (system metrics
every `system_tracking_interval` seconds, terminal capture on), the sampler's and the capture's
callbacks held the `Run` itself, so it was never collected: every dropped run of a sweep kept its
lock, three threads and a tee on stdout (each later line went into every such run's `logs`) until
the process ended. Each trial runs in a subprocess under a time limit.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import python_env, raw_points, sidecar

SCRIPT = textwrap.dedent(
    """
    import gc, json, sys, threading, time
    import aim_parquet as aim

    repo = sys.argv[1]
    hashes = []
    for trial in range(3):
        run = aim.Run(repo=repo, experiment="sweep", system_tracking_interval=0.2)
        hashes.append(run.hash)
        for i in range(50):
            run.track(float(i), name="loss")
        print(f"trial {trial} line", flush=True)
        deadline = time.monotonic() + 20
        while not any(m.name == "__system__cpu" for m in run.metrics()):  # a sample landed
            assert time.monotonic() < deadline, "no system sample"
            time.sleep(0.02)
        print(f"trial {trial} last line", flush=True)  # delivered after the run is gone
        del run
        gc.collect()
    deadline = time.monotonic() + 20
    def is_closed(h):
        with open(f"{repo}/.aim/runs/{h}/run.json") as f:
            return json.load(f)["end_time"] is not None
    while not all(is_closed(h) for h in hashes) and time.monotonic() < deadline:
        time.sleep(0.02)  # polling the closes the finalizers started
    print("after the sweep", flush=True)
    names = sorted(t.name for t in threading.enumerate() if t.name.startswith("aim_parquet"))
    sys.__stdout__.write(json.dumps({"hashes": hashes, "threads": names}) + "\\n")
    """
)


def test_dropped_default_runs_are_closed_and_keep_their_data(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["threads"] == [], "a dropped run's threads still run"
    for trial, run_hash in enumerate(report["hashes"]):
        assert sidecar(tmp_path, run_hash)["end_time"] is not None, f"run {trial} never closed"
        lock = tmp_path / ".aim" / "runs" / run_hash / "lock"
        assert lock.read_bytes() == b"", f"run {trial} still names a writer"
        points = raw_points(tmp_path, run_hash)
        assert [r["value"] for r in points[("loss", "{}")]] == [float(i) for i in range(50)]
        assert points.get(("__system__cpu", "{}")), f"run {trial} has no system sample"
        logs = [r["payload"].decode() for r in points[("logs", "{}")]]
        assert logs == [f"trial {trial} line", f"trial {trial} last line"], logs
