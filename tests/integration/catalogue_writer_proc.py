"""A training script stand-in for the catalogue kill trials (`test_catalogue_kill.py`).

usage: catalogue_writer_proc.py REPO RUN_HASH|- GEN MOMENT SEED

Opens the run (a new one for `-`), prints `hash <h>`, then tracks, as writer process GEN:

- `auto`: auto-steps, value `GEN * 1e6 + k` (k counts this process's points of the sequence);
- `explicit` (context {"s": "x"}): explicit steps, starting after the last step the resumed run's
  own catalogue reports (`run.get_metric(...).last_step()`), two apart; value `GEN * 1e6 + k`;
- `dup` (context {"s": "dup"}): explicit steps drawn from 0..40, so steps are written many times
  (last write wins); value `GEN * 1e6 + k`;
- `late`: auto-steps, only from a random point of this process on (often not in the sidecar yet
  when the process dies);
- `notes`: a Text `"GEN:k"` every 7th point, auto-steps.

It calls `run.flush()` every few points and then prints `flushed <auto> <explicit> <late> <notes>`
(how many points of each this process had tracked: all of them are in segments now).

MOMENT says where the parent will SIGKILL it:
- `early`: prints `early` after a few points, before this process flushes anything, and waits;
- `gap`: at a random flush of the script (not of the background flusher), after its segments
  are written and before the sidecar is (test-only wrappers around `SessionSegments.write_batches`
  and `RunWriter._write_sidecar`, installed in this process only: production code has no hook), prints
  `gap <auto> <explicit> <late> <notes>` and waits;
- `mid`: tracks and flushes until killed (the parent kills at a random moment);
- `close`: tracks, then in `close()`, between its last segment write and its sidecar write,
  prints `gap ...` as above and waits;
- `finish`: tracks a few hundred points and closes normally (prints `done`).
"""

from __future__ import annotations

import random
import sys
import threading
import time
from typing import Any

import aim_parquet as aim
from aim_parquet.storage.online import run_writer, session_segments

EXPLICIT = {"s": "x"}
DUP = {"s": "dup"}
WAIT_S = 60.0  # the parent kills long before


class Counts:
    def __init__(self) -> None:
        self.auto = self.explicit = self.late = self.notes = 0

    def line(self, word: str) -> str:
        return f"{word} {self.auto} {self.explicit} {self.late} {self.notes}"


def install_gap(counts: Counts, state: dict[str, Any]) -> None:
    """Stop before a sidecar write of the script's flush() or close() when `state["armed"]` says
    so: "flush" once that flush has written segments, "close" at any (the last one, of
    `close()`)."""
    write_batches = session_segments.SessionSegments.write_batches
    write_sidecar = run_writer.RunWriter._write_sidecar

    def is_ours() -> bool:
        """A write of the script's own flush() or close() (which runs on its own thread), not
        of the background flusher."""
        return not threading.current_thread().name.startswith("aim_parquet-flush")

    def batches_then_note(self: Any, seq: Any) -> None:
        write_batches(self, seq)
        if is_ours():
            state["wrote"] = True

    def stop_then_sidecar(self: Any, *, durable: bool) -> None:
        if is_ours():
            if state["armed"] == "close" or (state["armed"] == "flush" and state["wrote"]):
                print(counts.line("gap"), flush=True)
                time.sleep(WAIT_S)
            state["wrote"] = False
        write_sidecar(self, durable=durable)

    session_segments.SessionSegments.write_batches = batches_then_note  # type: ignore[method-assign]
    run_writer.RunWriter._write_sidecar = stop_then_sidecar  # type: ignore[method-assign]


def main() -> None:
    repo, run_hash, gen, moment, seed = sys.argv[1:6]
    g = int(gen)
    rng = random.Random(int(seed))
    counts = Counts()
    state: dict[str, Any] = {"armed": "", "wrote": False}
    install_gap(counts, state)
    run = aim.Run(
        None if run_hash == "-" else run_hash,
        repo=repo,
        system_tracking_interval=None,
        capture_terminal_logs=False,
    )
    print("hash", run.hash, flush=True)
    metric = run.get_metric("explicit", EXPLICIT)
    last = metric.last_step() if metric is not None else None
    next_explicit = 0 if last is None else last + 1
    late_from = rng.randrange(0, 400)
    flush_every = rng.randrange(20, 120)
    gap_at = rng.randrange(1, 4)  # which flush of this process stops in the gap
    total = {"early": rng.randrange(1, 30), "finish": rng.randrange(100, 400)}.get(moment, 10**9)
    if moment == "close":
        total = rng.randrange(50, 400)
    flushes = 0
    i = 0
    while i < total:
        base = g * 1e6
        run.track(base + counts.auto, name="auto")
        counts.auto += 1
        run.track(base + counts.explicit, name="explicit", step=next_explicit, context=EXPLICIT)
        next_explicit += 2
        counts.explicit += 1
        run.track(base + i, name="dup", step=rng.randrange(0, 41), context=DUP)
        if i >= late_from:
            run.track(base + counts.late, name="late")
            counts.late += 1
        if i % 7 == 0:
            run.track(aim.Text(f"{g}:{counts.notes}"), name="notes")
            counts.notes += 1
        i += 1
        if moment != "early" and i % flush_every == 0:
            flushes += 1
            state["armed"] = "flush" if moment == "gap" and flushes >= gap_at else ""
            run.flush()
            print(counts.line("flushed"), flush=True)
    if moment == "early":
        print(counts.line("early"), flush=True)
        time.sleep(WAIT_S)
    state["armed"] = "close" if moment == "close" else ""
    run.close()
    print("done", flush=True)


if __name__ == "__main__":
    main()
