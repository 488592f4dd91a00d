"""Aim's `aim.sdk.objects`: the trackable object classes, under the path Aim users import them
from (`from aim_parquet.sdk.objects import Image`). They live in `aim_parquet.objects`."""

from aim_parquet.objects import Audio, Distribution, Figure, Image, LogLine, LogRecord, Text

__all__ = ["Audio", "Distribution", "Figure", "Image", "LogLine", "LogRecord", "Text"]
