"""Offline maintenance tools: verify and repair, gc and stats, export, delete/copy/move of runs and
sidecar edits (archive, close)."""
