"""AimCallback in real XGBoost training (a few boosting rounds) and cross-validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.integrations.conftest import QUIET, import_or_skip, only_run, stored_runs

pytestmark = pytest.mark.integrations

xgb = import_or_skip("xgboost")


def _dmatrix(seed: int) -> object:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(80, 3))
    return xgb.DMatrix(x, label=x @ np.array([1.0, -2.0, 0.5]))


def test_train_tracks_each_round_per_eval_set(tmp_path: Path) -> None:
    from aim_parquet.xgboost import AimCallback

    callback = AimCallback(repo=tmp_path, experiment="xgb", **QUIET)
    dtrain, dvalid = _dmatrix(0), _dmatrix(1)
    params = {"max_depth": 2, "eta": 0.5, "objective": "reg:squarederror", "eval_metric": "rmse"}
    xgb.train(params, dtrain, 4, evals=[(dtrain, "train"), (dvalid, "valid")], callbacks=[callback])

    run = only_run(tmp_path)
    assert run.experiment == "xgb" and run.end_time is not None
    hparams = run.params["hparams"]
    assert hparams["max_depth"] == 2 and hparams["eta"] == pytest.approx(0.5)
    assert hparams["objective"] == "reg:squarederror" and hparams["booster"] == "gbtree"
    for subset in ("train", "valid"):
        rmse = run.metric("rmse", subset=subset, stdv=False)
        assert [(step, epoch) for step, _, epoch in rmse] == [(i, i) for i in range(4)]
    train = [v for _, v, _ in run.metric("rmse", subset="train", stdv=False)]
    assert train == sorted(train, reverse=True)  # boosting lowers the training error


def test_cv_tracks_mean_and_stdv(tmp_path: Path) -> None:
    from aim_parquet.xgboost import AimCallback

    callback = AimCallback(repo=tmp_path, **QUIET)
    xgb.cv({"max_depth": 2}, _dmatrix(0), 3, nfold=2, seed=0, callbacks=[callback])

    (run,) = stored_runs(tmp_path)
    for subset in ("train", "test"):
        assert len(run.metric("rmse", subset=subset, stdv=False)) == 3
        stdv = run.metric("rmse", subset=subset, stdv=True)
        assert len(stdv) == 3 and all(v >= 0 for _, v, _ in stdv)
