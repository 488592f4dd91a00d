"""Compaction: the compacted Parquet layout and writer, the compactor, and a run folder as the
offline tools see it (locks, sealed segments, usage)."""
