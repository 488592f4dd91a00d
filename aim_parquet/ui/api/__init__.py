"""The `/api/...` endpoints of the web UI; `routes(state)` lists them (documented in the README)."""

from __future__ import annotations

from typing import Any

from aim_parquet.ui.api import distributions, media, metrics, objects, run_page, runs
from aim_parquet.ui.api.state import UiState


def routes(state: UiState) -> list[Any]:
    """Every API route, bound to one repository's state."""
    return [
        *run_page.routes(state),  # before runs': /api/runs/HASH/logs is not /api/runs/HASH
        *runs.routes(state),
        *metrics.routes(state),
        *objects.routes(state),
        *media.routes(state),
        *distributions.routes(state),
    ]
