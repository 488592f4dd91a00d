"""AimCallback in a real Keras 3 `fit` (torch backend, CPU) of a two-layer model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.integrations.conftest import QUIET, import_or_skip, only_run

pytestmark = pytest.mark.integrations

keras = import_or_skip("keras")


def _model() -> object:
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05), loss="mse", metrics=["mae"])
    return model


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype("float32")
    return x, x.sum(axis=1, keepdims=True)


def test_fit_tracks_train_and_val_per_epoch(tmp_path: Path) -> None:
    from aim_parquet.keras import AimCallback, AimTracker

    assert AimTracker is AimCallback
    callback = AimCallback(repo=tmp_path, experiment="keras", **QUIET)
    model = _model()
    x, y = _data()
    model.fit(x, y, epochs=3, batch_size=8, validation_split=0.25, verbose=0, callbacks=[callback])

    run = only_run(tmp_path)
    assert run.experiment == "keras"
    assert run.end_time is not None
    hparams = run.params["hparams"]
    assert hparams["epochs"] == 3 and hparams["steps"] == 4  # 30 training rows / batch 8
    assert hparams["optimizer"]["name"].lower() == "sgd"
    assert hparams["optimizer"]["learning_rate"] == pytest.approx(0.05)
    for subset in ("train", "val"):
        assert {"loss", "mae"} <= run.names(subset=subset)
        loss = run.metric("loss", subset=subset)
        assert [(step, epoch) for step, _, epoch in loss] == [(0, 0), (1, 1), (2, 2)]
    assert loss[-1][1] < loss[0][1]  # it learned something
    assert [v for _, v, _ in run.metric("lr", subset="train")] == pytest.approx([0.05] * 3)

    # a second fit with the same callback resumes the run and continues the steps
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=[callback])
    run = only_run(tmp_path)
    assert [(s, e) for s, _, e in run.metric("loss", subset="train")][-1] == (3, 0)


def test_tensorflow_module_reexports_the_keras_callback() -> None:
    from aim_parquet import keras as aim_keras
    from aim_parquet import tensorflow as aim_tf

    assert aim_tf.AimCallback is aim_keras.AimCallback
    assert aim_tf.AimTracker is aim_keras.AimCallback
