"""Writing and printing a query's DataFrame safely (`aim-parquet query`).

- Files are written under a temp name next to the target and renamed into place: a reader never
  sees half a file, and an existing file is replaced only with `--force` (otherwise refused).
- Text that is not valid Unicode (lone surrogates in an old run's params) is written with visible
  `\\udcxx` escapes, so every output file is valid UTF-8.
- CSV: a text cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading
  `'`, so a spreadsheet shows it as text instead of running it as a formula (CSV injection).
- Parquet: a column whose values have different types across runs (a param `"warmup"` in one run,
  `100` in another) is written as the values' JSON text, as in the runs table.
- Printed tables: names pass through `safe_text` (no terminal escape sequences, no fake rows).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from aim_parquet.cli.common import CliError, safe_text
from aim_parquet.format.values import utf8_safe

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _is_text(column: Any) -> bool:
    """An object or string column (pandas 3 makes text columns of its own `str` dtype)."""
    from pandas.api.types import is_object_dtype, is_string_dtype

    return bool(is_object_dtype(column.dtype) or is_string_dtype(column.dtype))


def _map_text(df: Any, convert: Any) -> Any:
    """A copy of `df` with `convert` applied to every str cell and column name."""
    out = df.copy()
    for name in out.columns:
        if _is_text(out[name]):
            out[name] = out[name].map(lambda v: convert(v) if isinstance(v, str) else v)
    out.columns = [convert(str(c)) for c in out.columns]
    return out


def printable_frame(df: Any) -> Any:
    """`df` ready to print: every text cell and column name through `safe_text`."""
    return _map_text(df, safe_text)


def _csv_cell(text: str) -> str:
    text = utf8_safe(text)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def _parquet_table(df: Any) -> Any:
    import pyarrow as pa

    from aim_parquet.storage.index.runs_table import param_column

    arrays = []
    for name in df.columns:
        column = df[name]
        if _is_text(column):
            values = [None if _is_missing(v) else v for v in column.tolist()]
            arrays.append(param_column(values))
        else:
            arrays.append(pa.array(column.to_numpy()))  # NaN stays NaN
    return pa.Table.from_arrays(arrays, names=[utf8_safe(str(c)) for c in df.columns])


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def write_frame(df: Any, output: Path, *, force: bool) -> None:
    """Write `df` to `output` (.csv, .parquet or .json; see module doc)."""
    from aim_parquet.storage.base.atomic import temp_path_for

    if os.path.lexists(output) and not force:
        raise CliError(f"{output} already exists; pass --force to replace it")
    if output.is_dir():
        raise CliError(f"{output} is a folder; give a file name")
    tmp = temp_path_for(output.absolute())
    suffix = output.suffix.lower()
    try:
        if suffix == ".csv":
            _map_text(df, _csv_cell).to_csv(tmp, index=False)
        elif suffix == ".parquet":
            import pyarrow.parquet as pq

            pq.write_table(_parquet_table(df), tmp, compression="zstd")
        else:
            frame = _map_text(df, utf8_safe)
            frame.to_json(tmp, orient="records", indent=1, date_format="iso")
        _publish(tmp, output, force=force)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _publish(tmp: Path, output: Path, *, force: bool) -> None:
    if force:
        os.replace(tmp, output)
        return
    try:
        os.link(tmp, output)  # fails if a file appeared meanwhile: never overwrites one
    except FileExistsError:
        raise CliError(f"{output} already exists; pass --force to replace it") from None
    except OSError:  # no hard links on this filesystem
        if os.path.lexists(output):
            raise CliError(f"{output} already exists; pass --force to replace it") from None
        os.replace(tmp, output)
        return
    tmp.unlink()
