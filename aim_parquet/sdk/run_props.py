"""The props' cells of closed runs read from the run index's columns, for the run-level frame
(`sdk.run_table`): as Python lists (`prop_lists`, as `RunRecord` gives them) and the `tags`
column as Arrow (`tag_column`, typed as `frame_arrays.key_column` types the same cells)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from aim_parquet.format.run_fields import DEFAULT_EXPERIMENT, display_name
from aim_parquet.sdk.dataframes import PROP_KEYS, _tags_text
from aim_parquet.storage.base.columns import any_numpy, int64_array, positions_numpy, string_array

__all__ = ["prop_lists", "tag_column"]


def prop_lists(table: pa.Table, at: pa.Array) -> dict[str, list[Any]]:
    """The props' cells of the rows `at`, as `RunRecord` gives them (closed runs)."""
    taken = table.select(["hash", "name", "experiment", "description", "archived"]).take(at)
    names = taken.column("name").to_pylist()
    unnamed = np.flatnonzero(any_numpy(taken.column("name").is_null())).tolist()
    if unnamed:
        hashes = taken.column("hash").to_pylist()
        for i in unnamed:
            names[i] = display_name(hashes[i], None)
    experiment = taken.column("experiment")
    experiments = experiment.to_pylist()
    lengths = positions_numpy(pc.utf8_length(experiment).combine_chunks())
    for i in np.flatnonzero(lengths <= 0).tolist():  # (null or "")
        experiments[i] = DEFAULT_EXPERIMENT
    return dict(
        zip(
            PROP_KEYS,
            (
                names,
                experiments,
                taken.column("description").to_pylist(),
                taken.column("archived").to_pylist(),
                table.column("creation_time").take(at).to_pylist(),
                table.column("end_time").take(at).to_pylist(),
                [False] * len(at),
                _tag_texts(table, at),
            ),
            strict=True,
        )
    )


def tag_column(table: pa.Table, at: pa.Array) -> pa.Array:
    """`key_column` of the `tags` cells of the rows `at`: a code per row made with numpy (no
    tags: code 0), each distinct list's JSON made once, in the order the texts first come."""
    tags = table.column("tags").take(at)
    n = len(at)
    lengths = positions_numpy(pc.list_value_length(tags).combine_chunks())
    tagged = np.flatnonzero(lengths > 0)
    ids = np.zeros(n, dtype=np.int64)
    texts = [_tags_text(())]
    made = {texts[0]: 0}
    by_key: dict[tuple[str, ...], int] = {}
    found = tags.take(int64_array(tagged)).to_pylist() if len(tagged) else []
    for i, one in zip(tagged.tolist(), found, strict=True):
        key = tuple(one)
        code = by_key.get(key)
        if code is None:
            text = _tags_text(key)
            code = made.get(text)
            if code is None:
                code = made[text] = len(texts)
                texts.append(text)
            by_key[key] = code
        ids[i] = code
    used, first = np.unique(ids, return_index=True)
    order = used[np.argsort(first)]
    rank = np.zeros(len(texts), dtype=np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    indices = pa.Array.from_buffers(pa.int32(), n, [None, pa.py_buffer(rank[ids])])
    return pa.DictionaryArray.from_arrays(indices, string_array([texts[c] for c in order]))


def _tag_texts(table: pa.Table, at: pa.Array) -> list[str]:
    """The `tags` cells of the rows `at` (each distinct list's JSON made once)."""
    tags = table.column("tags").take(at)
    texts = [_tags_text(())] * len(at)
    lengths = positions_numpy(pc.list_value_length(tags).combine_chunks())
    tagged = np.flatnonzero(lengths > 0)
    if len(tagged):
        made: dict[tuple[str, ...], str] = {}
        found = tags.take(int64_array(tagged)).to_pylist()
        for i, one in zip(tagged.tolist(), found, strict=True):
            key = tuple(one)
            text = made.get(key)
            if text is None:
                text = made[key] = _tags_text(key)
            texts[i] = text
    return texts
