"""`Context`: the context of a sequence, immutable (Aim's `aim.sdk.context.Context`)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from aim_parquet.format.paths import canonical_context

__all__ = ["Context"]


class Context(Mapping[str, Any]):
    """A sequence context (immutable): `ctx["subset"]`, `ctx.subset`, `ctx.to_dict()`."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._data: dict[str, Any] = dict(data or {})

    def to_dict(self) -> dict[str, Any]:
        """A deep copy of the context as a plain dict."""
        return json.loads(canonical_context(self._data))  # type: ignore[no-any-return]

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(f"context has no key {name!r}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(canonical_context(self._data))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return canonical_context(self._data) == canonical_context(dict(other))
        return NotImplemented

    @property
    def idx(self) -> str:
        """A stable identity of the context (its canonical JSON)."""
        return canonical_context(self._data)

    def __repr__(self) -> str:
        return f"<Context {self._data!r}>"
