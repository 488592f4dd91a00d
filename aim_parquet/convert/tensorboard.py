"""`aim-parquet convert tensorboard LOGDIR`: TensorBoard event files, read without TensorFlow.

Runs are found like TensorBoard's run list: every folder under LOGDIR holding event files
(`*tfevents*`) is a run, except a folder named like a data subset (`train`, `validation`, ...),
whose events join its parent folder's run with the context `{"subset": <folder name>}`. Linked
folders are followed (each real folder once); a folder that cannot be read and an event file
that is a broken link are reported, and the rest is converted.

What becomes what (see `tb_reader`, which reads a run's files, and `tb_objects`):
- scalars (TF1 `simple_value` and TF2 / torch tensor scalars) -> metrics, tag -> name;
- histograms (`HistogramProto` and TF2 `[k, 3]` tensors) -> `Distribution`;
- images (encoded PNG/JPEG/GIF, TF1 `Image` or TF2 string tensors) -> `Image`, bytes kept;
- audio (TF1 `Audio` or TF2 tensors) -> `Audio`, bytes kept; text (string tensors) -> `Text`;
- hparams (`_hparams_/session_start_info`) -> `run["hparams"]`, session status and group ->
  `run["tensorboard"]`;
- every point keeps its event's wall time; the run's creation and end time are the earliest and
  latest event. Every event is kept, also when steps repeat (see `tb_reader`).
Model graphs, run metadata and plugins without an equivalent (PR curves, meshes, ...) are reported
as skipped, as are corrupt and truncated records (see `tfrecord`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from aim_parquet.convert.engine import FoundRuns, SourceRun
from aim_parquet.convert.sink import CountingSink
from aim_parquet.convert.tb_reader import RunReader
from aim_parquet.errors import SourceError
from aim_parquet.format.run_fields import experiment_or_default

EVENT_FILE_MARK = "tfevents"
SUBSET_NAMES = frozenset(
    {"train", "training", "val", "valid", "validation", "eval", "evaluation", "test", "dev"}
)


class TensorBoardRun(SourceRun):
    tracker = "tensorboard"

    def __init__(
        self, run_dir: Path, label: str, experiment: str, files: list[tuple[Path, str | None]]
    ) -> None:
        super().__init__(str(run_dir), label, experiment)
        self.run_dir = run_dir
        self.files = files  # (event file, subset or None), in reading order

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for path, _ in self.files:
            with open(path, "rb") as fh:  # an unreadable file fails the run before it is written
                size = os.fstat(fh.fileno()).st_size
            digest.update(f"{path.relative_to(self.run_dir)}\0{size}\0".encode())
        return digest.hexdigest()[:16]

    def read(self, sink: CountingSink) -> None:
        reader = RunReader(sink)
        for path, subset in self.files:
            reader.read_file(path, subset)
        reader.finish(self.label, self.experiment, self.run_dir)


def find_runs(logdir: Path, experiment: str | None = None) -> FoundRuns:
    """The runs under `logdir` (SourceError when it is missing or holds no event file), and
    what could not be looked at."""
    root = Path(os.path.expanduser(logdir))
    if not root.exists():
        raise SourceError(
            f"TensorBoard log folder {logdir} does not exist; pass the --logdir you gave TensorBoard"
        )
    if not root.is_dir():
        raise SourceError(f"{logdir} is not a folder; pass the folder holding the event files")
    root = root.resolve()
    try:
        os.listdir(root)
    except OSError as exc:
        raise SourceError(f"cannot read TensorBoard log folder {logdir}: {exc}") from exc
    groups: dict[Path, list[tuple[Path, str | None]]] = {}
    problems: list[str] = []
    walked: set[str] = set()

    def unreadable(exc: OSError) -> None:
        problems.append(f"{exc.filename}: folder cannot be read ({exc.strerror}); skipped")

    for folder, dirs, files in os.walk(root, onerror=unreadable, followlinks=True):
        real = os.path.realpath(folder)
        if real in walked:  # a link back up, or to a folder already walked
            dirs[:] = []
            continue
        walked.add(real)
        dirs.sort()
        here = Path(folder)
        events = []
        for name in sorted(f for f in files if EVENT_FILE_MARK in f):
            if (here / name).is_file():
                events.append(name)
            else:
                problems.append(f"{here / name}: a broken link or not a file; skipped")
        if not events:
            continue
        if here != root and here.name.lower() in SUBSET_NAMES:
            run_dir, subset = here.parent, here.name
        else:
            run_dir, subset = here, None
        groups.setdefault(run_dir, []).extend((here / event, subset) for event in events)
    if not groups:
        why = f" ({problems[0]})" if problems else ""
        raise SourceError(f"no TensorBoard event files (events.out.tfevents.*) under {logdir}{why}")
    experiment_name = experiment_or_default(experiment or root.name)
    runs: list[SourceRun] = []
    for run_dir in sorted(groups):
        rel = run_dir.relative_to(root)
        label = root.name if rel == Path(".") else rel.as_posix()
        run_files = sorted(groups[run_dir], key=lambda item: (item[1] or "", item[0].name))
        runs.append(TensorBoardRun(run_dir, label, experiment_name, run_files))
    return FoundRuns(runs, problems)
