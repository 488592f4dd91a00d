"""Write the golden repository committed under tests/data/golden-v1 (format version 1).

usage: python tools/make_golden_repo.py tests/data/golden-v1

Two runs with known content: 'compacted' (metrics, an image list, a distribution, a text; then
compacted) and 'segments' (metrics with a repeated step, left as segments and marked closed).
tests/format/test_golden_repo.py reads it with aim_parquet and with plain pyarrow. Regenerate
only when the format version changes, keeping the old folder so older data stays tested.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage import compact_run

QUIET = {"system_tracking_interval": None, "capture_terminal_logs": False}


def main(target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    with aim.Run(repo=target, experiment="golden", **QUIET) as run:
        run.name = "compacted"
        run["hparams"] = {"lr": 0.01, "layers": [64, 32], "nan": float("nan"), "blob": b"\x00\x01"}
        run.add_tag("golden")
        for step in range(20):
            run.track(
                1.0 / (step + 1),
                name="loss",
                step=step,
                epoch=step // 10,
                context={"subset": "train"},
            )
            run.track(step, name="count", step=step)
        pixels = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
        run.track([aim.Image(pixels, "a"), aim.Image(pixels[::-1], "b")], name="images", step=3)
        run.track(aim.Distribution(hist=[1, 2, 3], bin_range=(0, 3)), name="weights", step=0)
        run.track(aim.Text("hello golden"), name="notes", step=0)
    compact_run(RepoLayout(target), run.hash)
    with aim.Run(repo=target, experiment="golden", **QUIET) as run:
        run.name = "segments"
        run["hparams"] = {"lr": 0.1}
        for i, step in enumerate((0, 1, 2, 1)):  # step 1 twice: 11.0, then 13.0 (last wins)
            run.track(float(step * 10 + i), name="loss", step=step, context={"subset": "val"})
    for lock in target.rglob("*lock"):
        lock.unlink()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
