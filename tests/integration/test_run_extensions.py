"""A Run's built-in services end to end: system metrics, terminal logs, log records, params."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

import aim_parquet as aim


def test_system_metrics_terminal_logs_and_records_land_in_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MY_API_TOKEN", "hunter2")
    monkeypatch.setenv("PLAIN_SETTING", "visible")
    stdout_before = sys.stdout
    run = aim.Run(repo=tmp_path, system_tracking_interval=0.1, log_system_params=True)
    print("epoch 1 done")
    sys.stdout.write("progress 10%\rprogress 50%\rprogress 100%\n")
    print("an error line", file=sys.stderr)
    run.log_info("checkpoint saved", path="/ckpt/1", step=3)
    run.log_warning("lr is high")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        names = {m.name for m in run.metrics()}
        if {"__system__cpu", "__system__memory_percent", "__system__disk_percent"} <= names:
            break
        time.sleep(0.05)
    run.close()
    assert sys.stdout is stdout_before  # streams restored
    assert not [t for t in threading.enumerate() if t.name.startswith("aim_parquet")]
    captured = capsys.readouterr()
    assert "epoch 1 done" in captured.out and "an error line" in captured.err  # still printed

    ro = aim.Run(run.hash, repo=tmp_path, read_only=True)
    lines = [t.data for t in ro.get_terminal_logs().values.values_list()]
    assert "epoch 1 done" in lines and "progress 100%" in lines and "an error line" in lines
    assert not any("10%" in line for line in lines)  # carriage return keeps the final state
    records = ro.get_log_records().values.values_list()
    assert [(r.message, r.log_level) for r in records] == [
        ("checkpoint saved", 20),
        ("lr is high", 30),
    ]
    assert records[0].extra_args == {"path": "/ckpt/1", "step": 3}
    assert records[0].logger_info[0] == __file__
    cpu = ro.get_metric("__system__cpu", {})
    assert cpu is not None and len(cpu.values) >= 1
    params = ro["__system_params"]
    assert params["env_variables"]["PLAIN_SETTING"] == "visible"
    assert "MY_API_TOKEN" not in params["env_variables"]
    assert params["executable"] == sys.executable and "pytest" in params["packages"]


@pytest.mark.parametrize("interval", [0.05, 86401, "10", True, -1])
def test_bad_system_tracking_interval_is_a_clear_error(tmp_path: Path, interval: object) -> None:
    with pytest.raises(ValueError, match="0.1 and 86400"):
        aim.Run(repo=tmp_path, system_tracking_interval=interval, capture_terminal_logs=False)  # type: ignore[arg-type]
    assert not (tmp_path / ".aim" / "runs").exists() or not list(
        (tmp_path / ".aim" / "runs").iterdir()
    )


def test_terminal_log_lines_continue_after_resume(tmp_path: Path) -> None:
    run = aim.Run(repo=tmp_path, system_tracking_interval=None)
    print("first session")
    run.close()
    again = aim.Run(run.hash, repo=tmp_path, system_tracking_interval=None)
    print("second session")
    again.close()
    logs = aim.Run(run.hash, repo=tmp_path, read_only=True).get_terminal_logs()
    steps, values = logs.values.sparse_list()
    assert [v.data for v in values] == ["first session", "second session"]
    assert steps == [0, 1]
