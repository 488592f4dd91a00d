"""Shared primitives of storage: atomic writes, safe file access, file checks, the run lock,
the change marker and sidecar write, repository folders and Arrow column builders."""
