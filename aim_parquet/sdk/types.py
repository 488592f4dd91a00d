"""Aim's `aim.sdk.types`: `QueryReportMode` (our enum; Aim's own members are accepted too)."""

from aim_parquet.sdk.collections import QueryReportMode

__all__ = ["QueryReportMode"]
