"""Large params in their own file (`runs/<hash>/params-<digest>.json`), written once per change.

A writer rewrites `run.json` after every flush (its catalogue follows the segments); params of
`PARAMS_FILE_MIN_BYTES` or more (encoded) would be rewritten with it each time (a 31 MB param made
186 MB of writes in 10 s). So the writer (`ParamsFile`) writes such params once per change to a
file named by a digest of its bytes, then sidecars that name it (`"params_file"`, no `"params"`),
and removes the file it superseded. Readers (`read_sidecar_object`) read the sidecar, then the
file it names; when that file is gone (a writer changed the params and removed it between the two
reads) they read the sidecar again. FORMAT.md, "Large params".
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from aim_parquet.errors import CorruptFileError
from aim_parquet.format.json_records import json_bytes, loads_json_object
from aim_parquet.format.paths import (
    PARAMS_FILE_MIN_BYTES,
    is_params_file_name,
    params_file_name,
)
from aim_parquet.format.values import encode_json_value
from aim_parquet.storage.base.atomic import atomic_write
from aim_parquet.storage.base.safe_fs import MAX_JSON_FILE_BYTES, read_regular

MAX_READ_ATTEMPTS = 5


def read_sidecar_object(path: str | os.PathLike[str], what: str = "sidecar") -> dict[str, Any]:
    """The JSON object of the sidecar at `path`, with `params` read from the file it names, if
    it names one (the returned object then has `params`, and no `params_file`)."""
    for _ in range(MAX_READ_ATTEMPTS):
        data = loads_json_object(read_regular(path, what, MAX_JSON_FILE_BYTES), f"{what} {path}")
        name = data.get("params_file")
        if name is None:
            return data
        if not is_params_file_name(name):
            raise CorruptFileError(f"{what} {path}: invalid params_file {name!r}.")
        params_path = os.path.join(os.path.dirname(os.fspath(path)), name)
        try:
            raw = read_regular(params_path, "params file", MAX_JSON_FILE_BYTES)
        except FileNotFoundError:
            continue  # superseded meanwhile: the sidecar names a newer one
        data = {k: v for k, v in data.items() if k != "params_file"}
        data["params"] = loads_json_object(raw, f"params file {params_path}")
        return data
    raise CorruptFileError(
        f"{what} {path} names a params file that does not exist; run `aim-parquet verify`."
    )


class ParamsFile:
    """The writer's side: which params file (if any) the sidecars of `run_dir` name.

    `name_for(params)` encodes `params` only when they are a new object (params are replaced,
    never changed in place: `sdk.params.set_path`), writes the file when they are large, and
    says whether the name changed (then `prune` the superseded file once a sidecar naming the
    new one is written)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._params: object = None
        self._name: str | None = None
        self._is_known = False
        self.bytes_written = 0  # params bytes written to params files by this writer

    def name_for(self, params: dict[str, Any], *, durable: bool) -> tuple[str | None, bool]:
        """(the params file to name, or None to keep small params inline; whether it changed)."""
        if self._is_known and params is self._params:
            return self._name, False
        encoded = json_bytes(encode_json_value(params))
        name = params_file_name(encoded) if len(encoded) >= PARAMS_FILE_MIN_BYTES else None
        if name is not None and not (self.run_dir / name).is_file():
            atomic_write(self.run_dir / name, encoded, durable=durable)
            self.bytes_written += len(encoded)
        changed = name != self._name
        self._params, self._name, self._is_known = params, name, True
        return name, changed

    def prune(self) -> None:
        """Remove every params file of the run folder but the current one (the sidecar just
        written names it, or none)."""
        try:
            names = os.listdir(self.run_dir)
        except FileNotFoundError:
            return
        for name in names:
            if is_params_file_name(name) and name != self._name:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.run_dir / name)
