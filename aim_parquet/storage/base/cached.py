"""`cached_property` without a lock: a value computed on first access and kept in the
instance's `__dict__`, as `functools.cached_property` does, minus the class-wide lock that
Python 3.11's holds while any instance computes. A process forked while another thread was inside
such a computation (a `Pool` or `DataLoader` worker forked while a thread queried) inherited that
lock held by a thread it does not have, and hung on its first access of the property, on any
instance (hx18a). Two threads that both miss compute the value twice; the values here are pure
functions of the instance, so either is right."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Self, TypeVar, overload

__all__ = ["cached_property"]

T = TypeVar("T")


class cached_property(Generic[T]):  # noqa: N801 (named as the functools descriptor it replaces)
    """The value of `func(instance)`, computed once per instance (no lock: module doc)."""

    def __init__(self, func: Callable[[Any], T]) -> None:
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> Self: ...
    @overload
    def __get__(self, instance: object, owner: type | None = None) -> T: ...
    def __get__(self, instance: object | None, owner: type | None = None) -> Self | T:
        if instance is None:
            return self
        value = self.func(instance)
        instance.__dict__[self.name] = value
        return value
