"""The object contract shared by every trackable object, and the registry of Aim type names.

An object is a value the user tracks (``Image``, ``Distribution``, ``Text``...). The storage layer
never looks inside one: it asks :func:`object_kind` for the Aim dtype string of a tracked value, calls
:meth:`CustomObject.to_record` to get an :class:`ObjectRecord` (binary payload + small JSON-able
``meta``) and, on read, :func:`object_class` and :meth:`CustomObject.from_record` to rebuild it.

This module does no file I/O and imports nothing heavy.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from aim_parquet.errors import (
    InvalidObjectError,
    ObjectFileNotFoundError,
    OptionalDependencyError,
    UnsupportedValueError,
)
from aim_parquet.format.kinds import list_kind

__all__ = [
    "CustomObject",
    "InvalidObjectError",
    "ObjectFileNotFoundError",
    "ObjectRecord",
    "OptionalDependencyError",
    "object_class",
    "object_kind",
]


@dataclass(frozen=True)
class ObjectRecord:
    """What the storage layer stores for one object: a binary payload and small JSON-able fields."""

    payload: bytes
    meta: dict[str, Any]


_REGISTRY: dict[str, type[CustomObject]] = {}


class CustomObject(ABC):
    """Base of every trackable object; subclasses register themselves under ``AIM_NAME``."""

    AIM_NAME: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("AIM_NAME")
        if name is None:
            return
        known = _REGISTRY.get(name)
        if known is not None and known.__qualname__ != cls.__qualname__:
            raise TypeError(f"object type name {name!r} is already used by {known.__qualname__}")
        _REGISTRY[name] = cls

    @abstractmethod
    def to_record(self) -> ObjectRecord:
        """The payload and meta the storage layer writes."""

    @classmethod
    @abstractmethod
    def from_record(cls, payload: bytes, meta: Mapping[str, Any]) -> Self:
        """Rebuild the object from a stored record; cheap (nothing is decoded here)."""

    @abstractmethod
    def json(self) -> dict[str, Any]:
        """Small JSON-able description of the object (Aim's ``json()``)."""


def object_class(aim_name: str) -> type[CustomObject]:
    """The class registered under an Aim type name such as ``'aim.image'``."""
    try:
        return _REGISTRY[aim_name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(_REGISTRY))
        raise InvalidObjectError(
            f"unknown object type {aim_name!r}; known types: {known}. "
            "The data may have been written by a newer aim_parquet."
        ) from None


def object_kind(value: Any) -> str | None:
    """The Aim dtype string of a trackable object value, or ``None`` for anything else.

    ``'aim.image'`` for an ``Image``; ``'list(aim.image)'`` for a non-empty list/tuple of objects of
    one kind; ``'list'`` for an empty list/tuple. A list mixing kinds, or mixing objects with other
    values, raises :class:`UnsupportedValueError`.
    """
    if isinstance(value, CustomObject):
        return value.AIM_NAME
    if not isinstance(value, list | tuple):
        return None
    if not value:
        return "list"
    first = value[0]
    if not isinstance(first, CustomObject):
        if any(isinstance(item, CustomObject) for item in value):
            raise UnsupportedValueError(
                "a tracked list mixes objects with other values; track a list of one object kind"
            )
        return None
    name = first.AIM_NAME
    for index, item in enumerate(value):
        if not isinstance(item, CustomObject) or name != item.AIM_NAME:
            other = item.AIM_NAME if isinstance(item, CustomObject) else type(item).__name__
            raise UnsupportedValueError(
                f"a tracked list mixes kinds: item 0 is {name!r} but item {index} is {other!r}; "
                "track each kind under its own name"
            )
    return list_kind(name)


# ----------------------------------------------------------------------------- shared helpers


def as_ndarray(value: Any) -> np.ndarray[Any, Any] | None:
    """``value`` as a numpy array when it is one or looks like a tensor, else ``None``.

    Torch-like tensors (``.numpy()``) are detached and moved to the CPU first when they have those
    methods; objects with ``__array__`` go through ``np.asarray``. Nothing framework-specific is
    imported.
    """
    if isinstance(value, np.ndarray):
        return value
    to_numpy = getattr(value, "numpy", None)
    if callable(to_numpy):
        tensor = value
        detach = getattr(tensor, "detach", None)
        if callable(detach):
            tensor = detach()
        cpu = getattr(tensor, "cpu", None)
        if callable(cpu):
            tensor = cpu()
        try:
            array = tensor.numpy()
        except TypeError:
            # torch refuses .numpy() for dtypes numpy lacks (bfloat16): widen to float32 first.
            widen = getattr(tensor, "float", None)
            if not callable(widen):
                raise
            array = widen().numpy()
        return np.asarray(array)
    if hasattr(value, "__array__"):
        return np.asarray(value)
    return None


def read_input_file(path: str | os.PathLike[str], what: str) -> bytes:
    """The bytes of a file the user passed as an object's input, with errors that name the path."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ObjectFileNotFoundError(
            f"{what}: no such file {os.fspath(path)!r}; check the path"
        ) from None
    except OSError as exc:
        raise InvalidObjectError(
            f"{what}: cannot read {os.fspath(path)!r}: {exc.strerror or exc}"
        ) from exc


def caption_text(caption: Any) -> str:
    """A caption as ``str``: strings as they are, numbers and tensor scalars via ``str``."""
    if isinstance(caption, str):
        return caption
    if caption is None:
        return ""
    if isinstance(caption, bool | int | float | np.generic):
        return str(caption.item() if isinstance(caption, np.generic) else caption)
    item = getattr(caption, "item", None)
    if callable(item):
        try:
            return str(item())
        except (TypeError, ValueError):
            pass
    raise UnsupportedValueError(
        f"caption must be a str (or a number), not {type(caption).__name__}"
    )


def meta_field(meta: Mapping[str, Any], key: str, owner: str) -> Any:
    """``meta[key]``, with an error naming the object type when a stored record lacks it."""
    try:
        return meta[key]
    except KeyError:
        raise InvalidObjectError(f"stored {owner} record has no {key!r} field") from None


class CaptionedObject(CustomObject):
    """An object with a user caption and an encoded format (Image, Audio)."""

    _caption: str
    _format: str

    @property
    def caption(self) -> str:
        return self._caption

    @caption.setter
    def caption(self, value: str) -> None:
        self._caption = caption_text(value)

    @property
    def format(self) -> str:
        return self._format
