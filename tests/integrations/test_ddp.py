"""The framework adapters under DDP: real 2-process jobs on the CPU (`ddp_proc.py`).

Rank 0 logs as in a single process; rank 1 opens the job's run as its own writer with system
tracking only: one run, every metric and param written once (no `rank` context outside the
system metrics), and system metrics from both ranks with `{"rank": r, "host": h}`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import python_env
from tests.integrations.conftest import import_or_skip, only_run

pytestmark = pytest.mark.integrations

torch = import_or_skip("torch")
WORKER = str(Path(__file__).with_name("ddp_proc.py"))
TIMEOUT_S = 240
ROOT = str(Path(__file__).resolve().parents[2])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def job_env(**extra: str) -> dict[str, str]:
    env = python_env()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "TORCHELASTIC_RUN_ID"):
        env.pop(name, None)
    env.update(
        KERAS_BACKEND="torch", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1"
    )
    env.update(extra)
    return env


def check(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]


def rank_launch(mode: str, repo: Path) -> None:
    """Two processes with torchrun's environment variables (no process group)."""
    procs = [
        subprocess.Popen(
            [sys.executable, WORKER, mode, str(repo)],
            env=job_env(
                RANK=str(rank),
                WORLD_SIZE="2",
                LOCAL_RANK=str(rank),
                LOCAL_WORLD_SIZE="2",
                TORCHELASTIC_RUN_ID=f"{mode}-{os.getpid()}",
                MASTER_ADDR="127.0.0.1",
                MASTER_PORT=str(free_port()),
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(2)
    ]
    try:
        for p in procs:
            out, err = p.communicate(timeout=TIMEOUT_S)
            check(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def check_one_run_per_job(repo: Path) -> Any:
    """One run; no metric or object outside the system metrics carries a rank (only rank 0
    logged them); CPU samples from both ranks, labelled with rank and host."""
    run = only_run(repo)
    host = os.uname().nodename
    system = {c for name, c in run.metrics if name.startswith("__system__")}
    assert (("host", host), ("rank", 0)) in system and (("host", host), ("rank", 1)) in system
    assert {c for name, c in run.metrics if name == "__system__cpu"} == {
        (("host", host), ("rank", 0)),
        (("host", host), ("rank", 1)),
    }
    logged = [(n, c) for n, c in run.metrics if not n.startswith("__system__")]
    assert logged and all("rank" not in dict(c) for _, c in logged), logged
    assert all("rank" not in dict(c) for _, c in run.objects), list(run.objects)
    assert run.end_time is not None  # both ranks closed their writers
    return run


def test_plain_pytorch_job_under_torchrun(tmp_path: Path) -> None:
    repo = tmp_path / "exp"
    check(
        subprocess.run(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nproc_per_node",
                "2",
                "--master_port",
                str(free_port()),
                WORKER,
                "torch",
                str(repo),
            ],
            env=job_env(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
    )
    run = check_one_run_per_job(repo)
    assert [step for step, _, _ in run.metric("loss")] == list(range(6))
    # the helpers see through DDP's wrapper (names as in one process) and track on rank 0 only
    assert {name for name, _ in run.objects} == {"0.Linear", "2.Linear"}
    kind, points = run.objects[("0.Linear", (("params", "weights"), ("type", "gradients")))]
    assert kind == "aim.distribution" and [step for step, _ in points] == list(range(6))


def test_lightning_ddp_strategy_on_cpu(tmp_path: Path) -> None:
    """Plain `python`: Lightning's own launcher starts rank 1 (no RANK variable)."""
    import_or_skip("lightning")
    repo = tmp_path / "exp"
    check(
        subprocess.run(
            [sys.executable, WORKER, "lightning", str(repo)],
            env=job_env(MASTER_PORT=str(free_port())),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
    )
    run = check_one_run_per_job(repo)
    assert run.params["hparams"] == {"lr": 0.05}
    assert [step for step, _, _ in run.metric("loss", subset="train")] == [0, 1, 2, 3]


def test_hugging_face_and_keras_callbacks_in_a_two_rank_launch(tmp_path: Path) -> None:
    import_or_skip("transformers")
    import_or_skip("keras")
    rank_launch("hf+keras", tmp_path)
    run = check_one_run_per_job(tmp_path / "hf")
    assert run.params["hparams"] == {"learning_rate": 0.1}
    assert [step for step, _, _ in run.metric("loss")] == list(range(1, 7))
    run = check_one_run_per_job(tmp_path / "keras")
    assert run.params["hparams"]["epochs"] == 2
    assert [epoch for _, _, epoch in run.metric("loss", subset="train")] == [0, 1]
