"""The committed golden repository (format version 1) stays readable, by aim_parquet and by
plain pyarrow. It was written by tools/make_golden_repo.py; never regenerate it in place."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import aim_parquet as aim

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden-v1"


@pytest.fixture
def golden(tmp_path: Path) -> Path:
    target = tmp_path / "golden"
    shutil.copytree(GOLDEN, target)  # readers may add index files: never touch the original
    return target


def _runs_by_name(root: Path) -> dict[str, aim.Run]:
    return {run.name: run for run in aim.Repo(str(root)).iter_runs()}


def test_golden_repo_reads_through_the_sdk(golden: Path) -> None:
    runs = _runs_by_name(golden)
    assert set(runs) == {"compacted", "segments"}
    compacted = runs["compacted"]
    assert compacted.experiment == "golden" and compacted.tags == ["golden"]
    assert (
        compacted["hparams", "layers"] == [64, 32] and compacted["hparams", "blob"] == b"\x00\x01"
    )
    assert math.isnan(compacted["hparams", "nan"]) and not compacted.active
    loss = compacted.get_metric("loss", {"subset": "train"})
    steps, values = loss.values.sparse_numpy()
    assert list(steps) == list(range(20)) and values[4] == pytest.approx(0.2)
    assert [e for e in loss.epochs.values_list()][9:11] == [0, 1]
    count = compacted.get_metric("count", {})
    assert count.values.values_numpy().dtype.kind == "i" and count.values.last() == (19, 19)
    images = compacted.get_image_sequence("images", {}).values.last()[1]
    assert [i.caption for i in images] == ["a", "b"] and images[0].to_pil_image().size == (4, 4)
    weights = compacted.get_distribution_sequence("weights", {}).values.first()[1]
    assert list(weights.weights) == [1.0, 2.0, 3.0] and weights.range == [0.0, 3.0]
    assert compacted.get_text_sequence("notes", {}).values.first()[1].data == "hello golden"

    val = runs["segments"].get_metric("loss", {"subset": "val"})
    assert val.values.sparse_list() == ([0, 1, 2], [0.0, 13.0, 22.0])


def test_golden_repo_reads_with_plain_pyarrow(golden: Path) -> None:
    runs = golden / ".aim" / "runs"
    marker = json.loads((golden / ".aim" / "aim_parquet.json").read_text())
    assert marker["format_version"] == 1
    metrics = pa.concat_tables(
        pq.read_table(p) for p in sorted(runs.glob("*/compacted/metrics-*.parquet"))
    )
    loss = metrics.filter(pa.compute.equal(metrics["name"], "loss")).to_pylist()
    assert len(loss) == 20 and {json.loads(r["context"])["subset"] for r in loss} == {"train"}
    segment_rows = []
    for seg in sorted(runs.glob("*/seqs/*/*.arrows")):
        with pa.OSFile(str(seg)) as f:
            segment_rows.extend(pa.ipc.open_stream(f).read_all().to_pylist())
    assert [(r["step"], r["value"]) for r in segment_rows] == [
        (0, 0.0),
        (1, 11.0),
        (2, 22.0),
        (1, 13.0),
    ]
    sidecars = [json.loads(p.read_text()) for p in runs.glob("*/run.json")]
    assert sorted(s["name"] for s in sidecars) == ["compacted", "segments"]
