"""Distributed launch detection from the launcher's environment (no process is started)."""

from __future__ import annotations

import pytest

from aim_parquet.format.paths import is_valid_run_hash
from aim_parquet.storage.online.writer_parts import sequence_owner
from aim_parquet.system.launch import detect_launch

TORCHRUN = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "TORCHELASTIC_RUN_ID": "abc"}


def test_outside_a_launch_nothing_changes() -> None:
    assert detect_launch({}) is None
    assert detect_launch({"WORLD_SIZE": "1", "RANK": "0"}) is None
    assert detect_launch({"SLURM_NTASKS": "1", "SLURM_PROCID": "0", "SLURM_JOB_ID": "7"}) is None


def test_torchrun_ranks_share_one_valid_hash_per_job() -> None:
    launch = detect_launch(TORCHRUN)
    assert launch is not None and (launch.rank, launch.world_size, launch.local_rank) == (3, 4, 1)
    other = detect_launch({**TORCHRUN, "RANK": "0", "LOCAL_RANK": "0"})
    assert other is not None and other.run_hash() == launch.run_hash()
    assert is_valid_run_hash(launch.run_hash())
    assert launch.run_hash(1) != launch.run_hash()  # the job's second Run()
    next_job = detect_launch({**TORCHRUN, "TORCHELASTIC_RUN_ID": "abd"})
    assert next_job is not None and next_job.run_hash() != launch.run_hash()
    assert launch.labels == {"rank": 3, "host": launch.host}


def test_slurm_job_and_step() -> None:
    env = {"SLURM_NTASKS": "8", "SLURM_PROCID": "5", "SLURM_LOCALID": "1", "SLURM_JOB_ID": "77"}
    a = detect_launch({**env, "SLURM_STEP_ID": "0"})
    b = detect_launch({**env, "SLURM_STEP_ID": "1"})
    assert a is not None and b is not None and a.rank == 5
    assert a.run_hash() != b.run_hash()


def test_multi_host_job_without_an_id_is_refused_clearly() -> None:
    env = {"RANK": "0", "WORLD_SIZE": "8", "LOCAL_WORLD_SIZE": "4", "TORCHELASTIC_RUN_ID": "none"}
    with pytest.raises(ValueError, match="rdzv-id"):
        detect_launch(env)


def test_bad_rank_is_refused() -> None:
    with pytest.raises(ValueError, match="rank"):
        detect_launch({"WORLD_SIZE": "2", "RANK": "2", "TORCHELASTIC_RUN_ID": "x"})


def test_sequence_owner_is_the_int_rank_of_the_context() -> None:
    assert sequence_owner({}) == 0
    assert sequence_owner({"rank": 3, "subset": "train"}) == 3
    assert sequence_owner({"rank": "3"}) == 0
    assert sequence_owner({"rank": True}) == 0


LIGHTNING = {"WORLD_SIZE": "2", "NODE_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "4"}


def test_lightning_launcher_rank_zero_and_its_children_share_the_job() -> None:
    """Lightning's own launcher sets no RANK: rank 0 is the process that starts the others as
    its children (a real child process here), with LOCAL_RANK as the rank on node 0."""
    import json
    import subprocess
    import sys

    zero = detect_launch({**LIGHTNING, "LOCAL_RANK": "0"})
    assert zero is not None and (zero.rank, zero.world_size) == (0, 2)
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, sys; from aim_parquet.system.launch import detect_launch; "
            "l = detect_launch(json.loads(sys.argv[1])); print(l.rank, l.run_hash())",
            json.dumps({**LIGHTNING, "LOCAL_RANK": "1"}),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert child.stdout.split() == ["1", zero.run_hash()]
    other_port = detect_launch({**LIGHTNING, "LOCAL_RANK": "0", "MASTER_PORT": "5"})
    assert other_port is not None and other_port.run_hash() != zero.run_hash()
    with pytest.raises(ValueError, match="RANK"):  # another node: no id shared with node 0
        detect_launch({**LIGHTNING, "LOCAL_RANK": "0", "NODE_RANK": "1"})
