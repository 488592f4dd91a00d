"""The run of the suite: which workload runs on which side, in which order, and the rows it yields.

Every measurement is one fresh process (`env.run_side`); the repetitions of aim_parquet and Aim
alternate (ours, Aim, ours, Aim, ...) so that both see the same machine noise, and a ratio is
always between figures of this one run. Repos are made under `work` and removed when no later
workload needs them.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_suite.config import Config
from bench_suite.env import AIM_SIDE, AP_SIDE, SCALE_SIDE, SideError, SideResult, log, run_side
from bench_suite.stats import Measure, Row, fmt_measure, measure

Results = list[SideResult]


def tree_usage(path: Path) -> tuple[int, int]:
    """(files, bytes) of every regular file under `path`."""
    files = size = 0
    for dirpath, _dirs, names in os.walk(path):
        for name in names:
            full = os.path.join(dirpath, name)
            if os.path.isfile(full) and not os.path.islink(full):
                files += 1
                size += os.path.getsize(full)
    return files, size


def values_of(results: Results, key: str, scale: float = 1.0) -> list[float]:
    return [float(r.data[key]) * scale for r in results]


def pick(results: Results, key: str, unit: str, scale: float = 1.0) -> Measure | None:
    """A measure of `key` over the repetitions (None when every repetition failed)."""
    return measure(values_of(results, key, scale), unit) if results else None


def walls(results: Results) -> Measure | None:
    return measure([r.wall_s for r in results], "s") if results else None


def rate(results: Results, points_key: str = "points", seconds_key: str = "s") -> Measure | None:
    if not results:
        return None
    return measure([r.data[points_key] / r.data[seconds_key] for r in results], "points/s")


@dataclass
class Suite:
    cfg: Config
    aim_python: Path
    work: Path
    sections: list[tuple[str, str, list[Row]]] = field(default_factory=list)
    named: dict[str, Row] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # figures used by targets only
    raw: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    # -- running one side -------------------------------------------------------------------
    def _side(
        self, side: str, workload: str, params: dict[str, Any], tag: str
    ) -> SideResult | None:
        python, script = {
            "ours": (sys.executable, AP_SIDE),
            "scale": (sys.executable, SCALE_SIDE),
            "aim": (self.aim_python, AIM_SIDE),
        }[side]
        try:
            result = run_side(python, script, workload, params, self.work)
        except SideError as exc:
            self.errors.append(f"{tag} ({side}): {exc}")
            log(f"  FAILED {tag} ({side}): {exc}")
            return None
        self.raw.append(
            {
                "tag": tag,
                "side": side,
                "workload": workload,
                "params": params,
                "wall_s": result.wall_s,
                "result": result.data,
            }
        )
        elapsed = time.perf_counter() - self.started
        log(f"[{elapsed:7.1f} s] {tag} ({side}): {result.wall_s:.2f} s")
        return result

    def ours(self, workload: str, params: dict[str, Any], tag: str) -> SideResult | None:
        return self._side("ours", workload, params, tag)

    def scale(self, workload: str, params: dict[str, Any], tag: str) -> SideResult | None:
        """A workload of `scale_side.py` (the many-runs and analyst sections)."""
        return self._side("scale", workload, params, tag)

    def aim(self, workload: str, params: dict[str, Any], tag: str) -> SideResult | None:
        return self._side("aim", workload, params, tag)

    def alternate(
        self,
        tag: str,
        ours: Callable[[int], tuple[str, dict[str, Any]]] | None,
        aim: Callable[[int], tuple[str, dict[str, Any]]] | None,
        reps: int | None = None,
        aim_reps: int | None = None,
    ) -> tuple[Results, Results]:
        """`reps` repetitions of each side, alternating; `ours(i)`/`aim(i)` give the workload
        and params of repetition i."""
        reps = reps or self.cfg.reps
        aim_reps = reps if aim_reps is None else aim_reps
        mine: Results = []
        theirs: Results = []
        for i in range(max(reps, aim_reps)):
            if ours is not None and i < reps:
                r = self.ours(*ours(i), tag=f"{tag} {i + 1}/{reps}")
                if r is not None:
                    mine.append(r)
            if aim is not None and i < aim_reps:
                r = self.aim(*aim(i), tag=f"{tag} {i + 1}/{aim_reps}")
                if r is not None:
                    theirs.append(r)
        return mine, theirs

    def repo(self, name: str) -> str:
        return str(self.work / name)

    def drop(self, *names: str) -> None:
        for name in names:
            shutil.rmtree(self.work / name, ignore_errors=True)

    def add(self, key: str, row: Row) -> Row:
        self.named[key] = row
        return row

    def section(self, title: str, intro: str, rows: list[Row]) -> None:
        self.sections.append((title, intro, rows))
        for row in rows:
            log(f"  {row.label}: ours {fmt_measure(row.ours)} | Aim {fmt_measure(row.aim)}")
