"""The write-side snippets of ../shared/reference/sdk-basics.md, verbatim after `import aim_parquet as aim`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import raw_points, sidecar


@pytest.fixture
def aim_module(monkeypatch: pytest.MonkeyPatch) -> Any:
    import sys

    import aim_parquet

    monkeypatch.setitem(sys.modules, "aim", aim_parquet)  # `from aim import Run` resolves to us
    return aim_parquet


def test_create_run_track_params_and_metrics(tmp_path: Path, aim_module: Any) -> None:
    repo = str(tmp_path / "repo" / "path" / "to" / "store" / "runs")
    from aim import Run

    my_run = Run(
        repo=repo,
        experiment="experiment_name",
    )
    # Log training hyper-parameters
    my_run["hparams"] = {
        "learning_rate": 0.0001,
        "batch_size": 32,
    }
    # Track metrics
    for step in range(1000):
        value = step * 10
        my_run.track(
            value,  # Current value to track
            name="loss",  # The metric name
            step=step,  # Step index (optional)
            epoch=0,  # Epoch (optional)
            context={  # Metric context (optional)
                "subset": "train",
            },
        )
    my_run.close()
    points = raw_points(Path(repo), my_run.hash)[("loss", '{"subset":"train"}')]
    assert [p["value"] for p in points] == [s * 10 for s in range(1000)]
    assert sidecar(Path(repo), my_run.hash)["params"]["hparams"]["batch_size"] == 32
    assert sidecar(Path(repo), my_run.hash)["experiment"] == "experiment_name"


def test_continue_a_run(tmp_path: Path, aim_module: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from aim import Run

    monkeypatch.chdir(tmp_path)
    first = Run()
    first.track(1.0, name="loss")
    first.close()
    run_hash = first.hash
    run = Run(run_hash=run_hash)
    run.track(2.0, name="loss")
    run.close()
    assert [p["step"] for p in raw_points(tmp_path, run_hash)[("loss", "{}")]] == [0, 1]


def test_track_images_and_batches_and_distributions(tmp_path: Path, aim_module: Any) -> None:
    from aim import Distribution, Image, Run

    my_run = Run(repo=str(tmp_path), system_tracking_interval=None)
    rng = np.random.default_rng(0)
    img_tensor_or_pil = rng.integers(0, 255, size=(16, 16, 3), dtype=np.uint8)
    img_caption = "sample"
    for step in range(5):
        my_run.track(
            Image(img_tensor_or_pil, img_caption),  # Pass image data and/or caption
            name="generated",  # The name of image set
            step=step,  # Step index (optional)
            epoch=0,  # Epoch (optional)
            context={  # Context (optional)
                "subset": "train",
            },
        )
    train_loader = [(rng.random((4, 8, 8)), [f"label{i}" for i in range(4)]) for _ in range(3)]
    for step, (images, labels) in enumerate(train_loader):
        aim_images = [Image(img, lbl) for img, lbl in zip(images, labels, strict=True)]
        my_run.track(
            aim_images,  # List of images
            name="generated",  # The name of image set
            step=step,  # Step index (optional)
            epoch=0,  # Epoch (optional)
            context={  # Context (optional)
                "subset": "batches",
            },
        )
    tensor = rng.normal(size=1000)
    for step in range(5):
        my_run.track(
            Distribution(tensor),  # Pass distribution
            name="gradients",  # The name of distributions
            step=step,  # Step index (optional)
            epoch=0,  # Epoch (optional)
            context={  # Context (optional)
                "type": "weights",
            },
        )
    my_run.close()
    points = raw_points(tmp_path, my_run.hash)
    assert len(points[("generated", '{"subset":"train"}')]) == 5
    batches = points[("generated", '{"subset":"batches"}')]
    assert [(p["step"], p["index"]) for p in batches] == [
        (s, i) for s in range(3) for i in range(4)
    ]
    assert len(points[("gradients", '{"type":"weights"}')]) == 5
