"""Aim's `aim.sdk` import paths: `from aim_parquet.sdk import Run, Repo` (as `from aim.sdk import
Run, Repo`). The names are resolved on first use, so importing a submodule of this package (which
the top-level package does) does not import the rest of the SDK in a cycle."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Run": "aim_parquet.sdk.run",
    "Repo": "aim_parquet.sdk.repo",
    "Context": "aim_parquet.sdk.context",
    "Metric": "aim_parquet.sdk.sequence",
    "Images": "aim_parquet.sdk.sequence",
    "Texts": "aim_parquet.sdk.sequence",
    "Distributions": "aim_parquet.sdk.sequence",
    "Audios": "aim_parquet.sdk.sequence",
    "Figures": "aim_parquet.sdk.sequence",
    "QueryReportMode": "aim_parquet.sdk.collections",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'aim_parquet.sdk' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
