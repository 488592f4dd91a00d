"""A process of a distributed job (or not: the environment decides) driven line by line on
stdin, for the hostile many-writer tests. Each command prints one line starting with `ok` (or
`err <ExceptionName> <message>`) when done.

Commands:
  open [run_hash]          Run(repo=argv[1]) (optionally run_hash=...); prints `ok <hash>`
  track NAME N [CTX_JSON]  N points of NAME with auto-steps, value = 1e6 * rank-of-env + step
  param KEY JSON           run[KEY] = value
  get KEY                  prints `ok <json of run[KEY]>` (null when missing)
  flush | close
  fork-exit                fork a child that tracks a point and leaves through sys.exit (the
                           atexit handlers run, as in a multiprocessing worker that returns)
  exit                     sys.exit(0) without close (the atexit close)
"""

from __future__ import annotations

import json
import os
import sys

import aim_parquet as aim


def _value_base() -> float:
    return 1e6 * int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")))


def main() -> None:
    repo = sys.argv[1]
    run: aim.Run | None = None
    for line in sys.stdin:
        cmd, *args = line.split(" ", 3)
        cmd = cmd.strip()
        args = [a.strip() for a in args]
        try:
            if cmd == "open":
                run = aim.Run(
                    args[0] if args else None,
                    repo=repo,
                    system_tracking_interval=None,
                    capture_terminal_logs=False,
                )
                print(f"ok {run.hash}", flush=True)
                continue
            assert run is not None
            if cmd == "track":
                name, n = args[0], int(args[1])
                ctx = json.loads(args[2]) if len(args) > 2 else None
                for _ in range(n):
                    run.track(_value_base() + _next_step(run, name, ctx), name=name, context=ctx)
            elif cmd == "param":
                run[args[0]] = json.loads(line.split(" ", 2)[2])
            elif cmd == "get":
                try:
                    print(f"ok {json.dumps(run[args[0]])}", flush=True)
                except KeyError:
                    print("ok null", flush=True)
                continue
            elif cmd == "flush":
                run.flush()
            elif cmd == "close":
                run.close()
            elif cmd == "fork-exit":
                pid = os.fork()
                if pid == 0:
                    run.track(-1.0, name="from_child")
                    sys.exit(0)
                _, status = os.waitpid(pid, 0)
                print(f"ok {os.waitstatus_to_exitcode(status)}", flush=True)
                continue
            elif cmd == "exit":
                print("ok", flush=True)
                sys.exit(0)
            else:
                raise ValueError(f"unknown command {cmd!r}")
            print("ok", flush=True)
        except Exception as exc:  # reported to the test, which decides
            msg = str(exc).replace("\n", " ")
            print(f"err {type(exc).__name__} {msg}", flush=True)


def _next_step(run: aim.Run, name: str, ctx: dict | None) -> int:
    """How many points of (name, ctx) this process's writer holds: its next auto-step."""
    writer = run._writer
    assert writer is not None
    want = dict(ctx or {})
    for seq in writer.seqs.values():
        stored = dict(seq.info.context)
        if seq.info.name == name and run._user_context(stored) == want:
            return int(seq.next_step)
    return 0


if __name__ == "__main__":
    main()
