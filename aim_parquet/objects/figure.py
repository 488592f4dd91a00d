"""``Figure``: an interactive plotly figure, stored as its plotly JSON.

A plotly figure is recognised by duck typing (``to_json`` and ``to_plotly_json``), so plotly is not
imported to store one. A matplotlib figure is converted with ``plotly.tools.mpl_to_plotly``, which
needs plotly; without it the error says to ``pip install plotly`` or to track ``Image(fig)`` instead.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, Self

from aim_parquet.errors import UnsupportedValueError

from .base import CustomObject, InvalidObjectError, ObjectRecord, OptionalDependencyError

__all__ = ["Figure"]

_SOURCE = "plotly"
_FORMAT = "raw_json"


class Figure(CustomObject):
    """A plotly figure (or a matplotlib figure converted to one)."""

    AIM_NAME = "aim.figure"

    _data: str
    _version: str

    def __init__(self, obj: Any) -> None:
        if _is_plotly_figure(obj):
            figure = obj
        elif callable(getattr(obj, "savefig", None)):
            figure = _matplotlib_to_plotly(obj)
        else:
            raise UnsupportedValueError(
                f"Figure takes a plotly or matplotlib figure, not {type(obj).__name__}"
            )
        data = figure.to_json()
        if isinstance(data, bytes):
            data = data.decode("utf-8")
        if not isinstance(data, str):
            raise UnsupportedValueError(
                f"{type(obj).__name__}.to_json() returned {type(data).__name__}, not a JSON str"
            )
        self._data = data
        plotly = sys.modules.get("plotly")
        self._version = str(getattr(plotly, "__version__", ""))

    def to_record(self) -> ObjectRecord:
        return ObjectRecord(payload=self._data.encode("utf-8"), meta=self.json())

    @classmethod
    def from_record(cls, payload: bytes, meta: Mapping[str, Any]) -> Self:
        obj = cls.__new__(cls)
        try:
            obj._data = bytes(payload).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidObjectError(f"stored {cls.AIM_NAME} payload is not UTF-8: {exc}") from exc
        obj._version = str(meta.get("version", ""))
        return obj

    @property
    def data(self) -> str:
        """The figure's plotly JSON."""
        return self._data

    @property
    def version(self) -> str:
        """The plotly version that made the figure ('' when unknown)."""
        return self._version

    def to_plotly_figure(self) -> Any:
        """A ``plotly.graph_objects.Figure`` rebuilt from the stored JSON (needs plotly)."""
        try:
            import plotly.io as pio
        except ImportError as exc:
            raise OptionalDependencyError(
                "Figure.to_plotly_figure() needs plotly, which is not installed: pip install plotly"
            ) from exc
        return pio.from_json(self._data)

    def json(self) -> dict[str, Any]:
        return {"source": _SOURCE, "version": self._version, "format": _FORMAT}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Figure):
            return NotImplemented
        return self._data == other._data

    def __repr__(self) -> str:
        return (
            f"Figure(source={_SOURCE!r}, version={self._version!r}, json_chars={len(self._data)})"
        )


def _is_plotly_figure(obj: Any) -> bool:
    return callable(getattr(obj, "to_json", None)) and callable(
        getattr(obj, "to_plotly_json", None)
    )


def _matplotlib_to_plotly(figure: Any) -> Any:
    try:
        from plotly.tools import mpl_to_plotly
    except ImportError as exc:
        raise OptionalDependencyError(
            "Figure(matplotlib figure) converts it with plotly, which is not installed: "
            "pip install plotly (or track a static picture with Image(fig))"
        ) from exc
    try:
        return mpl_to_plotly(figure)
    except Exception as exc:  # the converter fails on many matplotlib features
        raise InvalidObjectError(
            f"plotly could not convert this matplotlib figure ({type(exc).__name__}: {exc}); "
            "track it as Image(fig) instead"
        ) from exc
