"""The framework adapters import their framework only when used, and say how to install it.

Runs in the default suite, where the frameworks are not installed; a missing framework is also
simulated (`sys.modules[name] = None`) so that the tests mean the same where they are installed.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from typing import Any

import pytest

from aim_parquet.errors import AimParquetError
from tests.conftest import PYTHON, python_env

# adapter module -> (lazily built public names, framework modules to hide, pip package named)
ADAPTERS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "pytorch_lightning": (("AimLogger",), ("lightning", "pytorch_lightning"), "lightning"),
    "hugging_face": (("AimCallback",), ("transformers",), "transformers"),
    "keras": (("AimCallback", "AimTracker"), ("keras",), "keras"),
    "tensorflow": (("AimCallback", "AimTracker"), ("keras",), "keras"),
    "xgboost": (("AimCallback",), ("xgboost",), "xgboost"),
    "lightgbm": (("AimCallback",), ("lightgbm",), "lightgbm"),
    "optuna": (("AimCallback",), ("optuna",), "optuna"),
}
FRAMEWORKS = sorted(
    {"torch", *(name for _, hidden, _ in ADAPTERS.values() for name in hidden), "tensorflow"}
)


def test_importing_adapters_imports_no_framework() -> None:
    modules = [f"aim_parquet.{name}" for name in (*ADAPTERS, "pytorch", "integrations_base")]
    code = (
        "import sys\n"
        f"for m in {modules!r}: __import__(m)\n"
        f"loaded = sorted(f for f in {FRAMEWORKS!r} if f in sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run(
        [PYTHON, "-c", code], env=python_env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


def _hide(monkeypatch: pytest.MonkeyPatch, module: Any, names: tuple[str, ...]) -> None:
    """Make `names` unimportable and forget the adapter classes already built."""
    for hidden in list(sys.modules):
        if hidden.split(".")[0] in names:
            monkeypatch.delitem(sys.modules, hidden)
    for name in names:
        monkeypatch.setitem(sys.modules, name, None)
    for attr in ("AimLogger", "AimCallback", "AimTracker"):
        monkeypatch.delitem(module.__dict__, attr, raising=False)
    keras = sys.modules.get("aim_parquet.keras")
    if keras is not None:  # aim_parquet.tensorflow delegates to it
        for attr in ("AimCallback", "AimTracker"):
            monkeypatch.delitem(keras.__dict__, attr, raising=False)


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_missing_framework_gives_a_clear_import_error(
    adapter: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = importlib.import_module(f"aim_parquet.{adapter}")
    public, hidden, package = ADAPTERS[adapter]
    _hide(monkeypatch, module, hidden)
    for name in public:
        assert name in module.__all__
        with pytest.raises(ImportError, match=rf"pip install {package}\b") as info:
            getattr(module, name)
        assert isinstance(info.value, AimParquetError)
        assert f"aim_parquet.{adapter if adapter != 'tensorflow' else 'keras'}." in str(info.value)
    with pytest.raises(ImportError, match=f"pip install {package}"):
        exec(f"from aim_parquet.{adapter} import {public[0]}", {})


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_unknown_attribute_is_an_attribute_error(adapter: str) -> None:
    module = importlib.import_module(f"aim_parquet.{adapter}")
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        module.Nope  # noqa: B018


def test_pytorch_helpers_need_torch_only_when_called(monkeypatch: pytest.MonkeyPatch) -> None:
    from aim_parquet import pytorch

    monkeypatch.setitem(sys.modules, "torch", None)
    for func in (pytorch.track_params_dists, pytorch.track_gradients_dists):
        with pytest.raises(ImportError, match="pip install torch"):
            func(object(), object())
