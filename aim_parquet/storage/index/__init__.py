"""The repository index: `.aim/index/runs.arrow`, a cache of every run's sidecar, and its records."""
