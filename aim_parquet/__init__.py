"""aim_parquet: Aim's tracking SDK on an append-only Arrow/Parquet store.

`import aim_parquet as aim` and use it like Aim: `aim.Run`, `aim.Repo`, `aim.Image`, ...
Importing this package starts no thread and imports no heavy optional library.
"""

from aim_parquet.errors import (
    AimParquetError,
    AimRepositoryError,
    CorruptFileError,
    FormatVersionError,
    IncompatibleSequenceError,
    InvalidObjectError,
    InvalidRunHashError,
    MissingRunError,
    ObjectFileNotFoundError,
    OptionalDependencyError,
    QueryError,
    QuerySyntaxError,
    ReadOnlyRunError,
    RepoNotFoundError,
    RunClosedError,
    RunLockedError,
    StorageError,
    UnsafeFileError,
    UnsupportedValueError,
)
from aim_parquet.objects import Audio, Distribution, Figure, Image, Text
from aim_parquet.sdk.dataset import read_dataset
from aim_parquet.sdk.repo import Repo
from aim_parquet.sdk.run import Run
from aim_parquet.sdk.sequence import Audios, Context, Distributions, Figures, Images, Metric, Texts
from aim_parquet.version import __version__

RunLockingError = RunLockedError  # Aim's name

__all__ = [
    "AimParquetError",
    "AimRepositoryError",
    "Audio",
    "Audios",
    "Context",
    "CorruptFileError",
    "Distribution",
    "Distributions",
    "Figure",
    "Figures",
    "FormatVersionError",
    "Image",
    "Images",
    "IncompatibleSequenceError",
    "InvalidObjectError",
    "InvalidRunHashError",
    "Metric",
    "MissingRunError",
    "ObjectFileNotFoundError",
    "OptionalDependencyError",
    "QueryError",
    "QuerySyntaxError",
    "ReadOnlyRunError",
    "Repo",
    "RepoNotFoundError",
    "Run",
    "RunClosedError",
    "RunLockedError",
    "RunLockingError",
    "StorageError",
    "Text",
    "Texts",
    "UnsafeFileError",
    "UnsupportedValueError",
    "__version__",
    "load_ipython_extension",
    "read_dataset",
]


def load_ipython_extension(ipython: object) -> None:
    """`%load_ext aim_parquet`: registers the `%aim_parquet up` magic (aim_parquet.ui.notebook)."""
    from aim_parquet.ui.notebook import load_ipython_extension as load

    load(ipython)
