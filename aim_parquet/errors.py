"""The exception tree of aim_parquet.

Every error the library raises on purpose derives from :class:`AimParquetError`; where a builtin
exception means the same thing it is a second base, so code written for Aim keeps catching it::

    AimParquetError
    ├── RepoNotFoundError            (+ RuntimeError)   no .aim repository at that path
    │   └── AimRepositoryError                          the .aim there is Aim's own (RocksDB): convert it
    ├── InvalidRunHashError          (+ ValueError)     hash is not 24 lowercase hex characters
    ├── MissingRunError              (+ KeyError)       no run with that hash
    ├── RunLockedError               (+ RuntimeError)   another live process writes this run
    ├── ReadOnlyRunError             (+ RuntimeError)   write call on a read-only run
    ├── RunClosedError               (+ RuntimeError)   write call after close()
    ├── UnsupportedValueError        (+ TypeError)      a param/context/track value of a type we cannot store
    ├── InvalidObjectError           (+ ValueError)     an Image/Audio/... input whose content is unusable
    │   └── ObjectFileNotFoundError  (+ FileNotFoundError) a file path given to Image/Audio is missing
    ├── OptionalDependencyError      (+ ImportError)    an optional package (plotly, pandas, ...) is missing
    ├── IncompatibleSequenceError    (+ ValueError)     value kind differs from the sequence's kind
    ├── FormatVersionError           (+ RuntimeError)   file written by a newer format version
    ├── CorruptFileError             (+ OSError)        a file that cannot be decoded (names the path)
    │   └── UnsafeFileError                             a link, FIFO, device or decoding bomb inside .aim/,
    │                                                   never followed or read (names the path)
    ├── StorageError                 (+ OSError)        background write failed (disk full, ...)
    ├── SourceError                  (+ OSError)        a conversion source is missing or unreadable
    └── QueryError                   (+ ValueError)     query refused: unknown name, dunder, limits
        └── QuerySyntaxError         (+ SyntaxError)    query is not a valid expression
"""

from __future__ import annotations


class AimParquetError(Exception):
    """Base class of every error aim_parquet raises on purpose."""


class RepoNotFoundError(AimParquetError, RuntimeError):
    """No `.aim` repository exists at the given path."""


class AimRepositoryError(RepoNotFoundError):
    """The `.aim` folder holds an Aim (RocksDB) repository, which aim_parquet neither reads nor
    writes into: convert it with `aim-parquet convert aim`."""


class InvalidRunHashError(AimParquetError, ValueError):
    """A run hash that is not 24 lowercase hex characters (refused before touching the disk)."""


class MissingRunError(AimParquetError, KeyError):
    """No run with the given hash exists in the repository."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want the plain message
        return str(self.args[0]) if self.args else ""


class RunLockedError(AimParquetError, RuntimeError):
    """Another live process holds the write lock of this run."""


class ReadOnlyRunError(AimParquetError, RuntimeError):
    """A write operation was attempted on a read-only run."""


class RunClosedError(AimParquetError, RuntimeError):
    """A write operation was attempted after `close()`."""


class UnsupportedValueError(AimParquetError, TypeError):
    """A value whose type aim_parquet cannot store."""


class InvalidObjectError(AimParquetError, ValueError):
    """A value of an accepted type whose content cannot become an object (shape, format, range)."""


class ObjectFileNotFoundError(InvalidObjectError, FileNotFoundError):
    """A file path given to `Image`/`Audio` that does not exist (Aim raises `ValueError`)."""


class OptionalDependencyError(AimParquetError, ImportError):
    """An optional package (plotly, matplotlib, pandas, polars) is needed but not installed."""


class IncompatibleSequenceError(AimParquetError, ValueError):
    """A tracked value whose kind differs from the kind the sequence was created with."""


class FormatVersionError(AimParquetError, RuntimeError):
    """A file written by a newer aim_parquet format version than this reader knows."""


class CorruptFileError(AimParquetError, OSError):
    """A file that exists but cannot be decoded; the message names it."""


class UnsafeFileError(CorruptFileError):
    """A file inside `.aim/` that aim_parquet refuses to follow or read: a symbolic link, a FIFO or
    device, or a file beyond a size, depth or decoded-size bound. The message names it."""


class StorageError(AimParquetError, OSError):
    """Writing tracked data failed (for example: disk full); earlier data stays readable."""


class QueryError(AimParquetError, ValueError):
    """A query that is refused: unknown name, dunder attribute, or evaluation limits exceeded."""


class QuerySyntaxError(QueryError, SyntaxError):
    """A query that is not a valid expression."""


class SourceError(AimParquetError, OSError):
    """`aim-parquet convert`: the source (a TensorBoard log folder, an MLflow store, an Aim
    repository) is missing, unreadable or not what it was said to be."""
