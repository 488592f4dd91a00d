"""Trackable objects (Image, Distribution, Text, Audio, Figure, LogLine, LogRecord).

Pure value <-> record code: every object turns into an :class:`ObjectRecord` (binary payload plus
small JSON-able ``meta``) and back; the storage layer does all file I/O. Importing this package does
not import Pillow, matplotlib or plotly.
"""

from .audio import Audio
from .base import (
    CustomObject,
    InvalidObjectError,
    ObjectFileNotFoundError,
    ObjectRecord,
    OptionalDependencyError,
    object_class,
    object_kind,
)
from .distribution import Distribution
from .figure import Figure
from .image import Image
from .text import LogLine, LogRecord, Text

__all__ = [
    "Audio",
    "CustomObject",
    "Distribution",
    "Figure",
    "Image",
    "InvalidObjectError",
    "LogLine",
    "LogRecord",
    "ObjectFileNotFoundError",
    "ObjectRecord",
    "OptionalDependencyError",
    "Text",
    "object_class",
    "object_kind",
]
