"""What `Run.track` checks a point against, as pure functions of the values (no run state): the
step and epoch bounds, the key a sequence buffer is cached under, an object's rows, whether a
value fits its sequence's kind and the context a sequence of one rank of a job is stored with."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, NoReturn

from aim_parquet.errors import IncompatibleSequenceError
from aim_parquet.format.kinds import is_list_kind, is_metric_kind
from aim_parquet.format.values import to_python_number
from aim_parquet.objects import CustomObject, object_kind
from aim_parquet.storage.online.run_writer import SeqBuffer
from aim_parquet.storage.online.writer_parts import sequence_owner

MAX_STEP = 2**63 - 1
MIN_EPOCH = -(2**63)

_encode_meta = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode


def seq_cache_key(name: str, context: Any) -> Any:
    """The key under which a sequence buffer is cached: the name for an empty context,
    (name, frozenset of items) for a dict of str values, None (not cached) otherwise.

    1, 1.0 and True compare and hash equal but are different contexts ({"a": 1} and {"a": True}
    are two sequences), so contexts with non-str values are never cached: the slow path tells
    them apart.
    """
    if context is None:
        return name
    if type(context) is dict:
        if not context:
            return name
        if all(type(v) is str for v in context.values()):
            return (name, frozenset(context.items()))
    return None


def checked_step(step: Any) -> int:
    """`step` as an int in [0, 2**63-1] (a numpy integer too); ValueError otherwise."""
    number = to_python_number(step)
    if type(number) is not int or isinstance(step, float):
        raise ValueError(f"step must be an int, got {step!r} ({type(step).__name__}).")
    if not 0 <= number <= MAX_STEP:
        raise ValueError(f"step must be between 0 and 2**63-1, got {number}.")
    return number


def no_next_step(name: Any) -> NoReturn:
    raise ValueError(
        f"sequence {name!r} already has step 2**63-1, the largest step; pass step= explicitly."
    )


def checked_epoch(epoch: Any) -> int:
    """`epoch` as an int that fits int64 (a numpy integer too); ValueError otherwise."""
    number = to_python_number(epoch)
    if type(number) is not int or isinstance(epoch, float):
        raise ValueError(f"epoch must be an int or None, got {epoch!r}.")
    if not MIN_EPOCH <= number <= MAX_STEP:
        raise ValueError(f"epoch must fit in int64, got {number}.")
    return number


def object_rows(value: Any, name: str) -> tuple[str, list[Any]]:
    """The kind of a tracked object (or list of objects) and its `(payload, meta JSON)` rows."""
    kind = object_kind(value)
    if kind is None:
        raise ValueError(
            f"Input type {type(value).__name__} is neither python number nor AimObject "
            f"(tracking {name!r})."
        )
    items = value if isinstance(value, (list, tuple)) else [value]
    rows = []
    for item in items:
        assert isinstance(item, CustomObject)
        record = item.to_record()
        rows.append((record.payload, _encode_meta(record.meta)))
    return kind, rows


def check_kind(seq: SeqBuffer, kind: str, value: Any, name: str) -> None:
    """Refuse a value whose kind does not fit the sequence's (IncompatibleSequenceError, as Aim);
    an empty `list` sequence takes the kind of its first list of objects."""
    have = seq.info.kind
    if have == kind or (is_metric_kind(have) and is_metric_kind(kind)):
        return
    if kind == "list" and is_list_kind(have):
        return
    if have == "list" and is_list_kind(kind) and seq.info.count == 0:
        seq.info = replace(seq.info, kind=kind)
        return
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    raise IncompatibleSequenceError(
        f"Cannot log value '{shown}' on sequence '{name}'. Incompatible data types."
    )


def rank_context(rank: int, context: dict[str, Any]) -> dict[str, Any]:
    """The context a sequence of `rank` is stored with: `{"rank": r}` added on a rank other
    than 0; a context naming another writer's rank is refused (each sequence has one writer:
    two ranks never write one sequence)."""
    if rank and "rank" not in context:
        return {**context, "rank": rank}
    owner = sequence_owner(context)
    if owner != rank:
        raise ValueError(
            f"context {context!r} names rank {owner} but this process is rank {rank} of the "
            "job: each rank writes only its own sequences. Use another context key."
        )
    return context


def user_context(rank: int | None, context: dict[str, Any]) -> dict[str, Any]:
    """The context the code of `rank` passes for a stored one (without its own rank)."""
    if rank and context.get("rank") == rank:
        return {k: v for k, v in context.items() if k != "rank"}
    return context
