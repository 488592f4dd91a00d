"""Aim's `aim.sdk.context`: the `Context` of a sequence."""

from aim_parquet.sdk.sequence import Context

__all__ = ["Context"]
