"""The package version (a leaf: the public face and `aim-parquet version` / the UI read it)."""

__version__ = "0.1.0"
