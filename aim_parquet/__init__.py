"""aim_parquet: Aim's tracking SDK on an append-only Arrow/Parquet store.

`import aim_parquet as aim` and use it like Aim: `aim.Run`, `aim.Repo`, `aim.Image`, ...
Importing this package starts no thread and imports no heavy optional library.
"""

from typing import TYPE_CHECKING, Any

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
from aim_parquet.version import __version__

if TYPE_CHECKING:  # the names below are loaded on first use (`__getattr__`)
    from aim_parquet.objects import Audio, Distribution, Figure, Image, Text
    from aim_parquet.sdk.dataset import read_dataset
    from aim_parquet.sdk.repo import Repo
    from aim_parquet.sdk.run import Run
    from aim_parquet.sdk.sequence import (
        Audios,
        Context,
        Distributions,
        Figures,
        Images,
        Metric,
        Texts,
    )

# Public name -> the module that defines it. `import aim_parquet` loads only the errors; the SDK
# (and with it numpy and pyarrow) is imported when one of these names is first used, and the
# name is then an ordinary module attribute (no cost per use after the first).
_LAZY = {
    **dict.fromkeys(("Audio", "Distribution", "Figure", "Image", "Text"), "aim_parquet.objects"),
    "read_dataset": "aim_parquet.sdk.dataset",
    "Repo": "aim_parquet.sdk.repo",
    "Run": "aim_parquet.sdk.run",
    **dict.fromkeys(
        ("Audios", "Context", "Distributions", "Figures", "Images", "Metric", "Texts"),
        "aim_parquet.sdk.sequence",
    ),
}

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


def __getattr__(name: str) -> Any:
    """The SDK's and the objects' names, imported on first use (PEP 562)."""
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'aim_parquet' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
