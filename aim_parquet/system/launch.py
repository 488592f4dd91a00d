"""Which process of a distributed job this is, from the launcher's environment variables.

torchrun / torch elastic (and Accelerate, which launches through it) set `RANK`, `WORLD_SIZE`,
`LOCAL_RANK` and `TORCHELASTIC_RUN_ID`; SLURM sets `SLURM_PROCID`, `SLURM_NTASKS`,
`SLURM_LOCALID`, `SLURM_JOB_ID` and `SLURM_STEP_ID`. A process is part of a distributed launch
when the world size is above 1; every process of one job then derives the same run hash from the
job's id (`DistributedLaunch.run_hash`), so all ranks open one run without talking to each other.

Lightning's own launcher (`Trainer(strategy="ddp")` run with plain `python`) sets no `RANK`:
on its first node the rank is `LOCAL_RANK` and the job is rank 0's process (`_lightning_launch`).

The job id: `TORCHELASTIC_RUN_ID` unless it is torchrun's default `none`, else `SLURM_JOB_ID`
(with `SLURM_STEP_ID`), else, when every rank runs on this host (`LOCAL_WORLD_SIZE` equals
`WORLD_SIZE`), the launcher process that started them all (`MASTER_ADDR`, `MASTER_PORT`, the
parent's pid and start time). A multi-host job with none of these has no shared id:
`detect_launch` raises ValueError asking for `--rdzv-id` or an explicit `run_hash`.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

MAX_RANK = 2**20 - 1


@dataclass(frozen=True)
class DistributedLaunch:
    """This process's place in a distributed job."""

    rank: int
    world_size: int
    local_rank: int
    job_id: str  # "<launcher>:<id>", the same in every process of the job
    host: str

    def run_hash(self, nth: int = 0) -> str:
        """The hash of the job's `nth` run (0: the first `Run()` each process opens): 24 hex,
        the same in every rank, different for every job."""
        text = f"aim_parquet-run:{self.job_id}" + (f":{nth}" if nth else "")
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]

    @property
    def labels(self) -> dict[str, int | str]:
        """The context that tells this process's system metrics apart from other ranks'."""
        return {"rank": self.rank, "host": self.host}


def _int(environ: Mapping[str, str], name: str) -> int | None:
    raw = environ.get(name, "").strip()
    try:
        return int(raw) if raw else None
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not an integer") from None


def _process_identity(pid: int) -> str:
    """A process's pid and start time, stable while it lives."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            start = f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        start = "?"
    return f"{pid}.{start}"


def _parent_identity() -> str:
    """The parent process (the local launcher)."""
    return _process_identity(os.getppid())


def _lightning_launch(env: Mapping[str, str], world_size: int) -> tuple[int, str] | None:
    """(rank, job id) under Lightning's own launcher, None when that is not it.

    `Trainer(strategy="ddp")` started with plain `python` makes its process rank 0: it sets
    `WORLD_SIZE`, `NODE_RANK`, `LOCAL_RANK`, `MASTER_ADDR` and `MASTER_PORT` and starts the other
    local ranks as its children, with no `RANK`. On node 0 the global rank is the local rank, and
    rank 0's process (this one, or the parent) identifies the job. Other nodes have no id shared
    with node 0: None (the caller asks for torchrun or an explicit run hash)."""
    local_rank, node_rank = _int(env, "LOCAL_RANK"), _int(env, "NODE_RANK")
    if local_rank is None or node_rank != 0 or not 0 <= local_rank < world_size:
        return None
    rank_zero = _process_identity(os.getpid()) if local_rank == 0 else _parent_identity()
    where = f"{env.get('MASTER_ADDR', '')}:{env.get('MASTER_PORT', '')}"
    return local_rank, f"lightning:{socket.gethostname()}:{where}:{rank_zero}"


def _job_id(environ: Mapping[str, str], world_size: int) -> str:
    run_id = environ.get("TORCHELASTIC_RUN_ID", "").strip()
    if run_id and run_id != "none":
        return f"torchelastic:{run_id}"
    slurm_job = environ.get("SLURM_JOB_ID", "").strip()
    if slurm_job:
        return f"slurm:{slurm_job}.{environ.get('SLURM_STEP_ID', '').strip()}"
    if _int(environ, "LOCAL_WORLD_SIZE") == world_size:
        where = f"{environ.get('MASTER_ADDR', '')}:{environ.get('MASTER_PORT', '')}"
        return f"local:{socket.gethostname()}:{where}:{_parent_identity()}"
    raise ValueError(
        "aim_parquet: this process is one of a distributed job spread over several hosts, but "
        "the job has no id all its processes share (TORCHELASTIC_RUN_ID is 'none' and "
        "SLURM_JOB_ID is not set). Launch with `torchrun --rdzv-id <id>`, or pass the same "
        "Run(run_hash=...) in every process."
    )


def detect_launch(environ: Mapping[str, str] | None = None) -> DistributedLaunch | None:
    """This process's place in a distributed launch; None outside one (world size unset or 1)."""
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" in env:
        world_size, rank = _int(env, "WORLD_SIZE"), _int(env, "RANK")
        local_rank = _int(env, "LOCAL_RANK")
    else:
        world_size, rank = _int(env, "SLURM_NTASKS"), _int(env, "SLURM_PROCID")
        local_rank = _int(env, "SLURM_LOCALID")
    if world_size is None or world_size <= 1:
        return None
    if rank is None and "RANK" not in env and "WORLD_SIZE" in env:
        found = _lightning_launch(env, world_size)
        if found is not None:
            rank, job_id = found
            return DistributedLaunch(rank, world_size, rank, job_id, socket.gethostname())
    if rank is None or not 0 <= rank < world_size or rank > MAX_RANK:
        raise ValueError(
            f"aim_parquet: distributed launch with world size {world_size} but rank {rank!r}; "
            "set RANK (or SLURM_PROCID) to this process's rank."
        )
    return DistributedLaunch(
        rank=rank,
        world_size=world_size,
        local_rank=local_rank if local_rank is not None else rank,
        job_id=_job_id(env, world_size),
        host=socket.gethostname(),
    )
