"""AimCallback in real LightGBM training (a few boosting rounds) and cross-validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.integrations.conftest import QUIET, import_or_skip, only_run, stored_runs

pytestmark = pytest.mark.integrations

lgb = import_or_skip("lightgbm")

PARAMS = {"objective": "regression", "num_leaves": 4, "learning_rate": 0.3, "verbose": -1}


def _dataset(seed: int) -> object:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(100, 3))
    return lgb.Dataset(x, label=x @ np.array([1.0, -2.0, 0.5]))


def test_train_tracks_each_round_per_valid_set(tmp_path: Path) -> None:
    from aim_parquet.lightgbm import AimCallback

    callback = AimCallback(repo=tmp_path, experiment="lgb", **QUIET)
    dtrain = _dataset(0)
    dvalid = _dataset(1)
    dvalid.reference = dtrain
    lgb.train(
        PARAMS,
        dtrain,
        num_boost_round=5,
        valid_sets=[dtrain, dvalid],
        valid_names=["train", "valid"],
        callbacks=[callback],
    )

    run = only_run(tmp_path)
    assert run.experiment == "lgb"
    assert run.end_time is not None  # closed after the last round
    hparams = run.params["hparams"]
    assert hparams["num_leaves"] == 4 and hparams["learning_rate"] == 0.3
    assert hparams["objective"] == "regression"
    for data_name in ("train", "valid"):
        l2 = run.metric("l2", data_name=data_name)
        assert [(step, epoch) for step, _, epoch in l2] == [(i, i) for i in range(5)]
    train = [v for _, v, _ in run.metric("l2", data_name="train")]
    assert train == sorted(train, reverse=True)


def test_cv_tracks_mean_and_stdv(tmp_path: Path) -> None:
    from aim_parquet.lightgbm import AimCallback

    callback = AimCallback(repo=tmp_path, **QUIET)
    lgb.cv(PARAMS, _dataset(0), num_boost_round=3, nfold=2, stratified=False, callbacks=[callback])

    (run,) = stored_runs(tmp_path)
    assert len(run.metric("l2-mean", data_name="valid")) == 3
    stdv = run.metric("l2-stdv", data_name="valid")
    assert len(stdv) == 3 and all(v >= 0 for _, v, _ in stdv)
