"""AimLogger in a real Lightning fit + test of a two-layer model on random data (CPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integrations.conftest import QUIET, import_or_skip, only_run, query, stored_runs

pytestmark = pytest.mark.integrations

L = import_or_skip("lightning")
torch = import_or_skip("torch")


class TwoLayer(L.LightningModule):  # type: ignore[misc,name-defined]
    def __init__(self, hidden: int = 8, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1)
        )

    def _loss(self, batch: Any) -> Any:
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        loss = self._loss(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val_loss", self._loss(batch))

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.log("test_loss", self._loss(batch))
        self.log("test_mae_macro", torch.tensor(0.5))

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def _loader(n: int = 32) -> Any:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=gen)
    y = x.sum(dim=1, keepdim=True)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)


def _trainer(logger: Any, tmp_path: Path, epochs: int = 2) -> Any:
    return L.Trainer(
        max_epochs=epochs,
        logger=logger,
        log_every_n_steps=1,
        accelerator="cpu",
        devices=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )


def test_fit_and_test_land_in_one_run(tmp_path: Path) -> None:
    from aim_parquet.pytorch_lightning import AimLogger

    logger = AimLogger(
        repo=tmp_path,
        experiment="lit",
        run_name="two-layer",
        context_postfixes={"averaging": {"macro": "_macro"}},
        **QUIET,
    )
    model = TwoLayer(hidden=8, lr=0.05)
    trainer = _trainer(logger, tmp_path)
    trainer.fit(model, _loader(), _loader())
    trainer.test(model, _loader())

    run = only_run(tmp_path)
    assert run.hash == logger.version == logger.run_hash
    assert run.experiment == "lit" and run.name == "two-layer"
    assert run.params["hparams"] == {"hidden": 8, "lr": 0.05}
    assert run.end_time is not None  # finalize after test closed it again

    train = run.metric("loss", subset="train")
    assert [step for step, _, _ in train] == list(range(8))  # 4 batches x 2 epochs, global step
    assert [epoch for _, _, epoch in train] == [0] * 4 + [1] * 4
    val = run.metric("loss", subset="val")
    assert [epoch for _, _, epoch in val] == [0, 1]
    assert [step for step, _, _ in val] == [3, 7]  # logged at the last step of each epoch
    test = run.metric("loss", subset="test")
    assert len(test) == 1 and test[0][1] > 0
    assert run.metric("mae", subset="test", averaging="macro")[0][1] == pytest.approx(0.5)
    assert "epoch" not in {name for name, _ in run.metrics}
    assert "train_loss" not in {name for name, _ in run.metrics}

    (val_loss,) = query(
        tmp_path, "metrics", "metric.name == 'loss' and metric.context.subset == 'val'"
    )
    assert val_loss.epochs.sparse_numpy()[1].tolist() == [0, 1]
    assert [r.hash for r in query(tmp_path, "runs", "run.hparams.hidden == 8")] == [run.hash]


def test_resume_by_run_hash_continues_the_run(tmp_path: Path) -> None:
    from aim_parquet.pytorch_lightning import AimLogger

    first = AimLogger(repo=tmp_path, **QUIET)
    _trainer(first, tmp_path, epochs=1).fit(TwoLayer(), _loader(), _loader())
    run_hash = first.version

    second = AimLogger(repo=tmp_path, run_hash=run_hash, **QUIET)
    assert second.experiment.hash == run_hash
    second.log_metrics({"train_loss": 1.25, "epoch": 7}, step=100)
    second.log_hyperparams({"extra": {"nested": (1, 2)}})
    second.finalize("success")

    (run,) = stored_runs(tmp_path)
    assert run.hash == run_hash
    assert run.metric("loss", subset="train")[-1] == (100, 1.25, 7)
    assert run.params["hparams"]["extra"] == {"nested": [1, 2]}
    assert run.params["hparams"]["lr"] == 0.05


def test_custom_context_prefixes(tmp_path: Path) -> None:
    from aim_parquet.pytorch_lightning import AimLogger

    with pytest.raises(ValueError, match="context_prefixes"):
        AimLogger(context_prefixes={"subset": {"train": "t/"}}, train_metric_prefix="x_")

    logger = AimLogger(
        repo=tmp_path,
        context_prefixes={"subset": {"train": "train/", "val": "val/"}, "head": {"a": "a."}},
        **QUIET,
    )
    logger.log_metrics({"train/a.loss": 1.0, "val/acc": 0.5, "other": 2}, step=3)
    logger.finalize("success")
    run = only_run(tmp_path)
    assert run.metric("loss", subset="train", head="a") == [(3, 1.0, None)]
    assert run.metric("acc", subset="val") == [(3, 0.5, None)]
    assert run.metric("other") == [(3, 2.0, None)]
