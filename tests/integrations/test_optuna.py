"""AimCallback in a real 5-trial Optuna study: one run per study, and one run per trial."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integrations.conftest import QUIET, import_or_skip, only_run, query, stored_runs

pytestmark = pytest.mark.integrations

optuna = import_or_skip("optuna")


@pytest.fixture(autouse=True)
def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _study(name: str) -> Any:
    return optuna.create_study(
        study_name=name, direction="minimize", sampler=optuna.samplers.RandomSampler(seed=0)
    )


def test_one_run_per_study(tmp_path: Path) -> None:
    from aim_parquet.optuna import AimCallback

    callback = AimCallback(metric_name="loss", repo=tmp_path, experiment_name="opt", **QUIET)

    def objective(trial: Any) -> float:
        x = trial.suggest_float("x", -10, 10)
        trial.suggest_categorical("kind", ["a", "b"])
        return float((x - 2) ** 2)

    study = _study("single")
    study.optimize(objective, n_trials=5, callbacks=[callback])
    callback.close()

    run = only_run(tmp_path)
    assert run.experiment == "opt"
    assert run.params["study_name"] == "single"
    assert run.params["hparams"] == {"direction": ["MINIMIZE"]}
    loss = run.metric("loss")
    assert [step for step, _, _ in loss] == [0, 1, 2, 3, 4]
    assert [v for _, v, _ in loss] == pytest.approx([t.value for t in study.trials])
    xs = [v for _, v, _ in run.metric("x")]
    assert xs == pytest.approx([t.params["x"] for t in study.trials])
    assert "kind" not in run.names()  # categorical choices are not numbers
    assert run.end_time is not None


def test_one_run_per_trial_with_track_in_aim(tmp_path: Path) -> None:
    from aim_parquet.optuna import AimCallback

    callback = AimCallback(as_multirun=True, repo=tmp_path, experiment_name="multi", **QUIET)
    assert callback.experiment is None  # no trial running

    @callback.track_in_aim()
    def objective(trial: Any) -> float:
        x = trial.suggest_int("x", 0, 10)
        for step in range(3):
            callback.experiment.track(float(x * step), name="inner", step=step)
        if trial.number == 3:
            raise optuna.TrialPruned()
        return float(x)

    study = _study("multi")
    study.optimize(objective, n_trials=5, callbacks=[callback])

    runs = stored_runs(tmp_path)
    assert [r.name for r in runs] == [f"trial-{i}" for i in range(5)]
    for run, trial in zip(runs, study.trials, strict=True):
        assert run.experiment == "multi" and run.end_time is not None
        assert run.params["hparams"] == {"direction": ["MINIMIZE"], "x": trial.params["x"]}
        assert run.params["trial_number"] == trial.number
        assert run.params["study_name"] == "multi"
        assert [v for _, v, _ in run.metric("inner")] == [trial.params["x"] * s for s in range(3)]
        if trial.number == 3:
            assert run.params["trial_state"] == "PRUNED" and "value" not in run.params
        else:
            assert run.params["trial_state"] == "COMPLETE"
            assert run.params["value"] == trial.value
    (pruned,) = query(tmp_path, "runs", "run.trial_state == 'PRUNED'")
    assert pruned.name == "trial-3"


def test_multi_objective_names(tmp_path: Path) -> None:
    from aim_parquet.optuna import AimCallback

    callback = AimCallback(repo=tmp_path, **QUIET)
    study = optuna.create_study(directions=["minimize", "maximize"])
    study.optimize(lambda t: (t.suggest_float("x", 0, 1), 1.0), n_trials=2, callbacks=[callback])
    callback.close()
    run = only_run(tmp_path)
    assert {"value_0", "value_1", "x"} <= run.names()
    assert run.params["hparams"]["direction"] == ["MINIMIZE", "MAXIMIZE"]

    bad = AimCallback(metric_name=["only_one"], repo=tmp_path, **QUIET)
    with pytest.raises(ValueError, match="one name per objective"):
        study.optimize(lambda t: (0.0, 1.0), n_trials=1, callbacks=[bad])
    bad.close()
