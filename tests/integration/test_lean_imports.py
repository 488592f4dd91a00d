"""Tracking and reading never import pandas (0.2-0.4 s and ~50 MB in every fresh process, and an
import that fails during interpreter shutdown); pyarrow loads it behind the scenes for many
conversions, so these paths build and read Arrow data through numpy buffers instead."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import PYTHON, python_env

SCRIPT = """
import sys
import numpy as np
import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage import compact_run
from pathlib import Path
repo = sys.argv[1]
with aim.Run(repo=repo, system_tracking_interval=None, capture_terminal_logs=False) as run:
    for i in range(50):
        run.track(float(i), name="loss", step=i % 40, epoch=i // 10, context={"subset": "train"})
    run.track(aim.Text("hello"), name="notes")
    pixels = np.zeros((2, 2), dtype=np.uint8)
    run.track([aim.Image(pixels, "a"), aim.Image(pixels, "b")], name="imgs")
assert "pandas" not in sys.modules, "tracking imported pandas"
if sys.argv[2] == "compact":
    compact_run(RepoLayout(Path(repo)), run.hash)
repo = aim.Repo(repo)
for metric in repo.query_metrics("metric.name == 'loss' and run.hash != ''"):
    steps, values = metric.values.sparse_numpy()
    assert list(steps) == list(range(40)) and values[0] == 40.0, (steps, values)
for seq in repo.query_images():
    assert [i.caption for i in seq.values.last()[1]] == ["a", "b"]
for seq in repo.query_texts():
    assert seq.values.last()[1].data == "hello"
assert "pandas" not in sys.modules, "reading imported pandas"
print("ok")
"""


def test_track_and_read_without_importing_pandas(tmp_path: Path) -> None:
    for mode in ("segments", "compact"):
        out = subprocess.run(
            [PYTHON, "-c", SCRIPT, str(tmp_path / mode), mode],
            capture_output=True,
            text=True,
            env=python_env(),
        )
        assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
