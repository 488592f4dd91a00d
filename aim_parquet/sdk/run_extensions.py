"""Wires the `system/` services (resource sampler, terminal capture, system params) to a Run.

The services hold their Run only weakly, so a Run dropped without `close()` is collected and its
finalizer closes it (stopping the services first); what they deliver after the Run is gone (the
last sample, the lines printed just before it was dropped) goes through a view of its writer.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from typing import Any, Protocol, Self

from aim_parquet.format.run_fields import LOGS_SEQUENCE
from aim_parquet.storage.online.run_writer import RunWriter

log = logging.getLogger(__name__)


class Stoppable(Protocol):
    def stop(self) -> None: ...

    def disown_after_fork(self) -> None: ...


class TrackedRun(Protocol):
    """What the services need of the `sdk.run.Run` they serve (which imports this module)."""

    _system_labels: dict[str, Any]
    _writer: RunWriter | None

    def track(
        self,
        value: Any,
        name: str | None = None,
        step: int | None = None,
        epoch: int | None = None,
        *,
        context: dict[str, Any] | None = None,
    ) -> None: ...

    def __setitem__(self, key: Any, value: Any) -> None: ...

    def _user_context(self, context: dict[str, Any]) -> dict[str, Any]: ...

    @classmethod
    def _writer_view(cls, writer: RunWriter) -> Self: ...


def start_extensions(
    run: TrackedRun,
    *,
    interval_s: float | None,
    log_system_params: bool,
    capture_terminal_logs: bool,
) -> list[Stoppable]:
    """Start what the Run arguments ask for; return the services in start order."""
    started: list[Stoppable] = []
    target = _tracking_target(run)
    if log_system_params:
        from aim_parquet.system.params import collect_system_params

        run["__system_params"] = collect_system_params()
    if interval_s is not None:
        from aim_parquet.system.resources import ResourceSampler

        labels = dict(run._system_labels)  # rank and host, in a distributed job

        def emit(name: str, value: float, context: dict[str, Any]) -> None:
            target().track(value, name=name, context={**context, **labels} if labels else context)

        sampler = ResourceSampler(interval_s, emit)
        sampler.start()
        started.append(sampler)
    if capture_terminal_logs:
        from aim_parquet.objects import LogLine
        from aim_parquet.system.terminal import TerminalCapture

        def on_lines(lines: list[tuple[int, str]]) -> None:
            into = target()
            for line_no, text in lines:
                into.track(LogLine(text), name=LOGS_SEQUENCE, step=line_no)

        capture = TerminalCapture(on_lines)
        capture.start(start_line=_next_log_line(run))
        started.append(capture)
    return started


def _tracking_target(run: TrackedRun) -> Callable[[], TrackedRun]:
    """What the services track into: `run` while it lives (held weakly), then a view of its
    writer (`Run._writer_view`), made once."""
    ref = weakref.ref(run)
    writer = run._writer
    assert writer is not None  # started once the run's writer is open
    make_view = type(run)._writer_view
    views: list[TrackedRun] = []

    def target() -> TrackedRun:
        live = ref()
        if live is not None:
            return live
        if not views:
            views.append(make_view(writer))
        return views[0]

    return target


def _next_log_line(run: TrackedRun) -> int:
    writer = run._writer
    if writer is None:
        return 0
    for seq in writer.seqs.values():
        if seq.info.name == LOGS_SEQUENCE and not run._user_context(seq.info.context):
            return int(seq.next_step)
    return 0
