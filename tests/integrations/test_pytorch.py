"""track_params_dists / track_gradients_dists on a real two-layer torch model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integrations.conftest import QUIET, import_or_skip, only_run

pytestmark = pytest.mark.integrations

torch = import_or_skip("torch")


def test_weight_and_gradient_histograms_per_layer(tmp_path: Path) -> None:
    import aim_parquet as aim
    from aim_parquet.pytorch import track_gradients_dists, track_params_dists

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 8),
        torch.nn.ReLU(),
        torch.nn.Sequential(torch.nn.Linear(8, 1, bias=False)),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    run = aim.Run(repo=tmp_path, **QUIET)
    track_gradients_dists(model, run)  # no backward yet: no gradients, nothing tracked
    for _ in range(2):
        x = torch.randn(16, 4)
        loss = (model(x) - x.sum(dim=1, keepdim=True)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        track_gradients_dists(model, run)
        optimizer.step()
        track_params_dists(model, run)
    run.close()

    stored = only_run(tmp_path)

    def dists(name: str, **context: Any) -> list[Any]:
        kind, points = stored.objects[(name, tuple(sorted(context.items())))]
        assert kind == "aim.distribution"
        assert [step for step, _ in points] == [0, 1]
        return [dist for _, dist in points]

    first = dists("0.Linear", type="data", params="weights")
    assert sum(first[-1].weights) == 4 * 8  # one histogram entry per weight
    weights = model[0].weight.detach().numpy()
    assert first[-1].range == pytest.approx([weights.min(), weights.max()])
    assert sum(dists("0.Linear", type="data", params="biases")[0].weights) == 8
    assert sum(dists("0.Linear", type="gradients", params="weights")[0].weights) == 32
    assert sum(dists("2.Sequential__0.Linear", type="data", params="weights")[0].weights) == 8
    dists("2.Sequential__0.Linear", type="gradients", params="weights")
    names = {name for name, _ in stored.objects}
    assert names == {
        "0.Linear",
        "2.Sequential__0.Linear",
    }  # ReLU has no parameters; no bias on 2__0
    assert (
        "2.Sequential__0.Linear",
        (("params", "biases"), ("type", "data")),
    ) not in stored.objects


@pytest.mark.parametrize("start", ["fork", "forkserver"])
def test_dataloader_workers_that_open_their_own_runs(tmp_path: Path, start: str) -> None:
    """DataLoader workers (non-persistent: they end with os._exit, no atexit) that each open a
    run keep every point they tracked, and their runs are closed."""
    from tests.integration.test_child_runs import run_trial

    run_trial(tmp_path, "dataloader", start)
