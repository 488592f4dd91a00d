"""`aim_parquet.tensorflow.AimCallback`: the Keras callback under Aim's TensorFlow module name.

Since TensorFlow 2.16, `tf.keras` is Keras 3, so `aim_parquet.keras.AimCallback` serves
`tf.keras.Model.fit` too; this module re-exports it (and the `AimTracker` alias) lazily, so that
importing it imports neither TensorFlow nor Keras.
"""

from __future__ import annotations

from typing import Any

__all__ = ["AimCallback", "AimTracker"]  # noqa: F822 - built on first access by __getattr__


def __getattr__(name: str) -> Any:
    if name in __all__:
        from aim_parquet import keras

        return getattr(keras, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
