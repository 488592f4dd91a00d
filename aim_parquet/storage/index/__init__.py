"""The repository index: `.aim/index/runs.jsonl`, a cache of every run's sidecar, and its records."""
