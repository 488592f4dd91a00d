"""The `/api/...` endpoints of the web UI; `routes(state)` lists them (documented in the README)."""

from __future__ import annotations

from typing import Any

from aim_parquet.ui.api import metrics, runs
from aim_parquet.ui.api.state import UiState


def routes(state: UiState) -> list[Any]:
    """Every API route, bound to one repository's state."""
    return [*runs.routes(state), *metrics.routes(state)]
