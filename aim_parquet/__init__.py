"""aim_parquet: Aim's tracking SDK on an append-only Arrow/Parquet store.

`import aim_parquet as aim` and use it like Aim: `aim.Run`, `aim.Repo`, `aim.Image`, ...
Importing this package starts no thread and imports no heavy optional library.
"""

from aim_parquet.errors import (
    AimParquetError,
    CorruptFileError,
    FormatVersionError,
    IncompatibleSequenceError,
    InvalidRunHashError,
    MissingRunError,
    QueryError,
    QuerySyntaxError,
    ReadOnlyRunError,
    RepoNotFoundError,
    RunClosedError,
    RunLockedError,
    StorageError,
    UnsupportedValueError,
)
from aim_parquet.objects import Audio, Distribution, Figure, Image, Text
from aim_parquet.sdk.run import Run

RunLockingError = RunLockedError  # Aim's name

__version__ = "0.1.0"

__all__ = [
    "AimParquetError",
    "Audio",
    "CorruptFileError",
    "Distribution",
    "Figure",
    "FormatVersionError",
    "Image",
    "IncompatibleSequenceError",
    "InvalidRunHashError",
    "MissingRunError",
    "QueryError",
    "QuerySyntaxError",
    "ReadOnlyRunError",
    "RepoNotFoundError",
    "Run",
    "RunClosedError",
    "RunLockedError",
    "RunLockingError",
    "StorageError",
    "Text",
    "UnsupportedValueError",
    "__version__",
]
