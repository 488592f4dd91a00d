"""Sequence access on a run (metrics(), get_metric(), dataframe(), ...)."""

from __future__ import annotations


class RunSequencesMixin:
    """Read access to a run's sequences; filled in by the query layer."""
