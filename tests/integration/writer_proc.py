"""A training-script stand-in run as a subprocess by the crash, lock and concurrency tests.

usage: writer_proc.py REPO MODE [RUN_HASH] [N]
  MODE new     start a run, print its hash, track N points of 'm' (value = step) forever if N=0
  MODE resume  resume RUN_HASH and keep tracking 'm' from its next step
  MODE hold    open RUN_HASH for writing, print 'locked', then sleep until killed
Prints "hash <h>" once and "step <i> <time.time()>" every 500 steps (flushed) so the parent knows
what was tracked when.
"""

from __future__ import annotations

import sys
import time

import aim_parquet as aim


def main() -> None:
    repo, mode = sys.argv[1], sys.argv[2]
    run_hash = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] != "-" else None
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    run = aim.Run(
        run_hash if mode != "new" else None,
        repo=repo,
        system_tracking_interval=None,
        capture_terminal_logs=False,
    )
    print("hash", run.hash, flush=True)
    if mode == "hold":
        print("locked", flush=True)
        while True:
            time.sleep(0.05)
    run["hparams"] = {"lr": 0.01}
    start = 0
    for info in run.props.sequences:
        if info.name == "m" and info.last_step is not None:
            start = info.last_step + 1
    i = start
    while n == 0 or i < start + n:
        run.track(float(i), name="m", context={"subset": "train"})  # value == step
        if i % 500 == 0:
            print("step", i, time.time(), flush=True)
            time.sleep(0.002)
        i += 1
    run.close()
    print("done", flush=True)


if __name__ == "__main__":
    main()
