"""Shared primitives of storage: atomic writes, safe file access, small file helpers (`files`),
file checks, every lock (`lock`, with `lock_holder` naming holders), the change marker and sidecar
write, repository folders and Arrow column builders."""
