"""The framework-free parts of the adapters: name -> context rules, params, the run holder."""

from __future__ import annotations

import enum
import json
from pathlib import Path

import numpy as np
import pytest

from aim_parquet.hugging_face import split_log_key
from aim_parquet.integrations_base import (
    ContextAffixes,
    RunHolder,
    as_epoch,
    as_number,
    sanitize_params,
)
from aim_parquet.keras import split_keras_key
from aim_parquet.lightgbm import evaluation_points
from aim_parquet.optuna import metric_names
from aim_parquet.pytorch_lightning import context_affixes, hparams_dict
from aim_parquet.xgboost import booster_params
from tests.conftest import sidecar


def _lightning_affixes(**kwargs: object) -> ContextAffixes:
    args: dict[str, object] = {
        "train_metric_prefix": "train_",
        "val_metric_prefix": "val_",
        "test_metric_prefix": "test_",
        "context_prefixes": None,
        "context_postfixes": None,
    }
    args.update(kwargs)
    return context_affixes(**args)  # type: ignore[arg-type]


def test_lightning_default_prefixes_map_to_subset() -> None:
    affixes = _lightning_affixes()
    assert affixes.split("train_loss") == ("loss", {"subset": "train"})
    assert affixes.split("val_acc") == ("acc", {"subset": "val"})
    assert affixes.split("test_f1") == ("f1", {"subset": "test"})
    assert affixes.split("loss") == ("loss", {})
    assert affixes.split("train_") == ("train_", {})  # never cut a name to nothing
    assert _lightning_affixes(val_metric_prefix="valid/").split("valid/x") == (
        "x",
        {"subset": "val"},
    )
    assert _lightning_affixes(test_metric_prefix=None).split("test_x") == ("test_x", {})


def test_lightning_custom_prefixes_and_postfixes() -> None:
    affixes = _lightning_affixes(
        context_prefixes={"subset": {"train": "t_", "trainval": "t_v_"}},
        context_postfixes={"avg": {"macro": "_macro", "micro": "_micro"}, "n": {"yes": "_norm"}},
    )
    assert affixes.split("t_v_f1_norm") == ("f1", {"subset": "trainval", "n": "yes"})
    assert affixes.split("t_f1_macro") == ("f1", {"subset": "train", "avg": "macro"})
    with pytest.raises(ValueError, match="val_metric_prefix"):
        _lightning_affixes(context_prefixes={"subset": {}}, val_metric_prefix="v_")
    with pytest.raises(ValueError, match="context_postfixes"):
        _lightning_affixes(context_postfixes={"avg": "_macro"})


def test_lightning_hparams_dict() -> None:
    import argparse

    assert hparams_dict(argparse.Namespace(lr=0.1, layers=(1, 2))) == {"lr": 0.1, "layers": [1, 2]}
    assert hparams_dict(None) == {}
    with pytest.raises(TypeError, match="dict or argparse.Namespace"):
        hparams_dict([1, 2])


def test_hugging_face_log_keys() -> None:
    assert split_log_key("loss") == ("loss", {})
    assert split_log_key("train_loss", ["train"]) == ("loss", {"subset": "train"})
    assert split_log_key("eval_loss") == ("loss", {"subset": "eval"})
    assert split_log_key("eval_books_loss", ["eval_books"]) == (
        "loss",
        {"subset": "eval", "sub_dataset": "books"},
    )
    assert split_log_key("eval_books_loss", []) == ("books_loss", {"subset": "eval"})
    assert split_log_key("test_samples_per_second", ["test"]) == (
        "samples_per_second",
        {"subset": "test"},
    )


def test_keras_log_keys() -> None:
    assert split_keras_key("val_loss") == ("loss", {"subset": "val"})
    assert split_keras_key("loss") == ("loss", {"subset": "train"})
    assert split_keras_key("val_") == ("val_", {"subset": "train"})


def test_optuna_metric_names() -> None:
    assert metric_names("value", 1) == ["value"]
    assert metric_names("value", 2) == ["value_0", "value_1"]
    assert metric_names(["a", "b"], 2) == ["a", "b"]
    with pytest.raises(ValueError, match="one name per objective"):
        metric_names(["a"], 2)


def test_lightgbm_evaluation_points() -> None:
    assert evaluation_points(("valid", "l2", 0.5, False)) == [("l2", "valid", 0.5)]
    assert evaluation_points(("valid", "l2", 0.5, False, None)) == [("l2", "valid", 0.5)]
    assert evaluation_points(("valid", "l2", 0.5, False, 0.1)) == [
        ("l2-mean", "valid", 0.5),
        ("l2-stdv", "valid", 0.1),
    ]
    assert evaluation_points(("cv_agg", "valid l1", 0.5, False, 0.1))[0] == (
        "l1-mean",
        "valid",
        0.5,
    )


def test_xgboost_booster_params() -> None:
    config = {
        "learner": {
            "generic_param": {"seed": "7"},
            "learner_train_param": {"objective": "reg:squarederror", "booster": "gbtree"},
            "gradient_booster": {
                "name": "gbtree",
                "tree_train_param": {"eta": "0.300000012", "max_depth": "2", "mc": "()"},
            },
        }
    }
    params = booster_params(json.dumps(config))
    assert params == {
        "booster": "gbtree",
        "seed": 7,
        "objective": "reg:squarederror",
        "eta": pytest.approx(0.3),
        "max_depth": 2,
        "mc": "()",
    }


class Color(enum.Enum):
    RED = "red"


def test_sanitize_params_keeps_what_it_can() -> None:
    value = {
        1: Color.RED,
        "path": Path("/tmp/x"),
        "np": np.float32(0.5),
        "set": {3, 1},
        "nested": {"t": (1, None)},
        "obj": object,
    }
    out = sanitize_params(value)
    assert out == {
        "1": "red",
        "path": "/tmp/x",
        "np": 0.5,
        "set": [1, 3],
        "nested": {"t": [1, None]},
        "obj": "<class 'object'>",
    }


def test_numbers_and_epochs() -> None:
    assert as_number(True) == 1 and as_number(np.int64(3)) == 3 and as_number("x") is None
    assert as_epoch(1.5) == 1 and as_epoch(2) == 2 and as_epoch(None) is None
    assert as_epoch(float("nan")) is None


def test_run_holder_creates_lazily_and_resumes_after_close(tmp_path: Path) -> None:
    holder = RunHolder(
        repo=tmp_path,
        experiment="exp",
        system_tracking_interval=None,
        log_system_params=False,
        capture_terminal_logs=False,
        run_name="named",
    )
    assert not holder.is_open and holder.run_hash is None
    assert not (tmp_path / ".aim").exists()
    holder.run.track(1.0, name="loss")
    first = holder.run_hash
    holder.close()
    assert sidecar(tmp_path, first)["end_time"] is not None
    holder.run.track(2.0, name="loss")  # resumed: same run, next step
    assert holder.run_hash == first and holder.run.name == "named"
    holder.forget()
    holder.run.track(3.0, name="loss")
    assert holder.run_hash != first
    holder.close()
    data = sidecar(tmp_path, first)
    assert data["experiment"] == "exp" and data["end_time"] is not None
