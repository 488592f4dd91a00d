"""One rank of a 4-process job, launched like `torchrun --nproc_per_node 4` (the test sets RANK,
WORLD_SIZE, LOCAL_RANK, TORCHELASTIC_RUN_ID, MASTER_ADDR).

argv: repo, steps, half. Tracks `loss` (value rank * 1e6 + step) and `acc` (context
{"subset": "train"}) with auto-steps; after `half` points of each it flushes, prints
`half <hash>` and waits for a line on stdin; then tracks up to `steps` points and closes,
printing `done`. A resumed rank (the same environment) opens the same run and tracks the
points from its real last step on.
"""

from __future__ import annotations

import os
import sys

import aim_parquet as aim


def main() -> None:
    repo, steps, half = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rank = int(os.environ["RANK"])
    run = aim.Run(repo=repo, system_tracking_interval=None, capture_terminal_logs=False)
    if rank == 0:
        run["hparams"] = {"lr": 0.01, "world_size": int(os.environ["WORLD_SIZE"])}
    have = _tracked(run)
    for _ in range(have, steps):
        step = _tracked(run)
        run.track(rank * 1e6 + step, name="loss")
        run.track(step, name="acc", context={"subset": "train"})
        if step + 1 == half:
            run.flush()
            print(f"half {run.hash}", flush=True)
            sys.stdin.readline()
    run.close()
    print("done", flush=True)


def _tracked(run: aim.Run) -> int:
    """How many points this rank's `loss` has: the writer's next auto-step."""
    writer = run._writer
    assert writer is not None
    for seq in writer.seqs.values():
        if seq.info.name == "loss":
            return int(seq.next_step)
    return 0


if __name__ == "__main__":
    main()
