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
    compact_run(RepoLayout(Path(repo)), run.hash, rewrite_all=True)
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


def _run_script(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`script` in a fresh interpreter with `args`."""
    return subprocess.run(
        [PYTHON, "-c", script, *args], capture_output=True, text=True, env=python_env()
    )


def test_track_and_read_without_importing_pandas(tmp_path: Path) -> None:
    for mode in ("segments", "compact"):
        out = _run_script(SCRIPT, str(tmp_path / mode), mode)
        assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


MANY_RUNS = """
import sys
from pathlib import Path
import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.compaction.compactor import compact_repo
repo = sys.argv[1]
for i in range(70):  # enough runs for reads to go through the analyst dataset
    with aim.Run(repo=repo, system_tracking_interval=None, capture_terminal_logs=False) as run:
        run["hparams"] = {"lr": i / 100, "tag": f"r{i}"}
        for step in range(5):
            run.track(float(i + step), name="loss", step=step, context={"subset": "train", "k": i})
report = compact_repo(RepoLayout(Path(repo)), rewrite_all=True)
assert report.count("compacted") == 70 and not report.notes, report
assert (Path(repo) / ".aim" / "dataset" / "current.json").exists(), "no dataset was written"
assert "pandas" not in sys.modules, "compacting imported pandas"
found = {m.run["hparams"]["tag"]: m.values.sparse_numpy() for m in aim.Repo(repo).query_metrics(
    "metric.name == 'loss'")}
assert len(found) == 70 and list(found["r3"][1]) == [3.0, 4.0, 5.0, 6.0, 7.0], found["r3"]
assert "pandas" not in sys.modules, "reading through the dataset imported pandas"
print("ok")
"""


def test_compact_and_dataset_reads_without_importing_pandas(tmp_path: Path) -> None:
    out = _run_script(MANY_RUNS, str(tmp_path / "many"))
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


TRAINING_SCRIPT = """
import sys
import aim_parquet as aim
repo = sys.argv[1]
with aim.Run(repo=repo, system_tracking_interval=None, capture_terminal_logs=False) as run:
    run["hparams"] = {"lr": 0.1}
    for step in range(5):
        run.track(float(step), name="loss", step=step)
with aim.Run(run_hash=run.hash, repo=repo, system_tracking_interval=None,
             capture_terminal_logs=False) as resumed:
    resumed.track(9.0, name="loss")
with aim.Run(run_hash=run.hash, repo=repo, system_tracking_interval=None,
             capture_terminal_logs=False) as resumed:
    resumed.track(7.0, name="loss", step=2)  # a rewritten step: the close recounts exactly
assert "pandas" not in sys.modules, "closing a run that rewrote a step imported pandas"
read = aim.Repo(repo).get_run(run.hash)
assert read["hparams"] == {"lr": 0.1}, read["hparams"]
assert [list(m.values.sparse_numpy()[0]) for m in read.metrics()] == [[0, 1, 2, 3, 4, 5]]
offline = sorted(m for m in sys.modules if m.startswith(
    ("aim_parquet.storage.maintenance", "aim_parquet.storage.compaction")))
assert offline == [], offline
print("ok")
"""


def test_a_training_script_never_imports_the_offline_tools(tmp_path: Path) -> None:
    """STYLE.md: the online path never imports the offline tools (maintenance, compaction); a
    training script that tracks, resumes and reads its run back pays for neither."""
    out = _run_script(TRAINING_SCRIPT, str(tmp_path / "repo"))
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


RUN_MODULE_ONLY = """
import sys
from aim_parquet.sdk.run import Run
run = Run(repo=sys.argv[1], system_tracking_interval=None, capture_terminal_logs=False)
run.track(1.0, name="loss")
assert type(run.repo).__name__ == "Repo"
run.close()
print("ok")
"""


def test_importing_one_sdk_module_plugs_the_repo_into_runs(tmp_path: Path) -> None:
    """`run.repo` works when a script imports only `aim_parquet.sdk.run` (the SDK's `Repo` is
    plugged into the runs however the SDK was reached)."""
    out = _run_script(RUN_MODULE_ONLY, str(tmp_path / "repo"))
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
