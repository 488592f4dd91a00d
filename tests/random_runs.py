"""Random repositories written by the SDK for the run index's tests: odd params and contexts
(equal dicts in another key order included), names, tags, rewritten points, int metrics,
archived runs, and a couple of runs resumed and closed again."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

import aim_parquet as aim

QUIET: dict[str, Any] = {
    "system_tracking_interval": None,
    "capture_terminal_logs": False,
    "log_system_params": False,
}
CONTEXTS: list[dict[str, Any]] = [
    {}, {"subset": "train"}, {"b": 1, "a": 2}, {"x": True}, {"x": 1.0}, {"x": None},
    {"nested": {"a": 1}}, {"l": [1, 2]}, {"s": "\u00e9"},
]  # fmt: skip
VALUES = [0.5, -0.0, 1e-9, math.nan, math.inf, -math.inf, 3.0]


def write_random_runs(repo: str, rng: random.Random, n: int, params: Sequence[Any]) -> list[str]:
    """`n` closed runs drawn by `rng` (an extra param drawn from `params`), two of them resumed
    and closed again; their hashes in order of creation."""
    hashes = []
    for i in range(n):
        run = aim.Run(repo=repo, experiment=rng.choice([None, "e1", "\u00e9"]), **QUIET)
        run["hparams"] = {"lr": rng.choice([1e-3, 3e-4, 1, "a"]), "seed": i}
        if rng.random() < 0.5:
            run[rng.choice(["p", "q", "hparams.x"])] = rng.choice(params)
        if rng.random() < 0.3:
            run.name = rng.choice(["n", "\u00e9", "x" * 200])
        if rng.random() < 0.2:
            run.description = "d"
        if rng.random() < 0.2:
            run.add_tag(rng.choice(["t", "u"]))
        for _ in range(rng.randint(0, 3)):
            name, context = rng.choice(["loss", "acc", "l\u00f4ss"]), rng.choice(CONTEXTS)
            for step in range(rng.randint(1, 4)):
                run.track(rng.choice(VALUES), name=name, context=context, step=step)
            if rng.random() < 0.2:
                run.track(rng.choice(VALUES), name=name, context=context, step=0)  # a rewrite
        if rng.random() < 0.1:
            run.track(rng.randint(-5, 5), name="ints", step=0)
        if rng.random() < 0.1:
            run.archived = True
        run.close()
        hashes.append(run.hash)
    for run_hash in rng.sample(hashes, min(2, len(hashes))):  # resumed and closed again
        run = aim.Run(run_hash=run_hash, repo=repo, **QUIET)
        run.track(0.125, name="loss", step=10)
        run.close()
    return hashes
