"""Bytes written by a run with a large param: the param once per change (in its params file)
against rewritten with every sidecar write (`--inline`: what earlier releases did, reproduced by
raising the params-file threshold out of reach).

    .venv/bin/python tools/bench_params.py --param-mb 31 --seconds 10
    .venv/bin/python tools/bench_params.py --param-mb 31 --seconds 10 --inline

Each run tracks one metric in a loop for `--seconds` with the default flush interval (1 s), so
the sidecar is rewritten about once a second. Bytes are the process's `write_chars` (psutil: every
byte passed to write(2), page cache included) from the first `track` to the end of `close()`.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import psutil

import aim_parquet as aim
from aim_parquet.storage.online import params_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--param-mb", type=float, default=31.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--inline", action="store_true", help="params rewritten on every flush")
    args = parser.parse_args()
    if args.inline:
        params_file.PARAMS_FILE_MIN_BYTES = 1 << 62  # type: ignore[misc]
    proc = psutil.Process()
    with tempfile.TemporaryDirectory() as root:
        run = aim.Run(repo=root, system_tracking_interval=None, capture_terminal_logs=False)
        run["blob"] = "x" * int(args.param_mb * (1 << 20))
        before = proc.io_counters().write_chars
        started = time.monotonic()
        step = 0
        while time.monotonic() - started < args.seconds:
            run.track(float(step), name="loss", step=step)
            step += 1
            if step % 1000 == 0:
                time.sleep(0.01)
        run.close()
        written = proc.io_counters().write_chars - before
    mode = "inline (every flush)" if args.inline else "params file (once per change)"
    print(
        f"{args.param_mb:g} MB param, {args.seconds:g} s of tracking, {mode}: "
        f"{written / (1 << 20):,.1f} MiB written ({step:,} points)"
    )


if __name__ == "__main__":
    main()
