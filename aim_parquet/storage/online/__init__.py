"""The online run path: a run's writer (buffers, segments, sidecar) and its readers (segments and
compacted files, the true catalogue, object rows at chosen steps)."""
