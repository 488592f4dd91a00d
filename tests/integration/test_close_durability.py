"""`close()` makes the points durable before the sidecar that says the run is complete.

A sidecar with `end_time` is trusted as complete by every reader (FORMAT.md, reader rule 8). The
close wrote it durably (fsync) while the segments it describes were fsynced only afterwards, and
only those whose descriptor was still in the 64-entry descriptor cache; new segment files and
sequence folders were never made durable at all. After a power loss or an OS crash the sidecar
could say "complete, N points" over segments that lost their last batches or vanished. A power
cut cannot be staged in a test, so this one records, in a real writer process, every `fsync`
(by the path of its descriptor) and every `os.replace`, and checks the order the spec needs:
each segment file, each folder that gained a segment or a sequence folder, then the sidecar.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import python_env

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(["fsync", os.readlink(f"/proc/self/fd/{fd}")])
        return real_fsync(fd)

    def replace(src, dst, **kw):
        real_replace(src, dst, **kw)
        events.append(["replace", os.fspath(dst)])

    os.fsync, os.replace = fsync, replace
    import aim_parquet as aim

    run = aim.Run(repo=sys.argv[1], system_tracking_interval=None, capture_terminal_logs=False)
    for step in range(3):
        for s in range(100):  # more sequences than the descriptor cache holds
            run.track(float(step), name=f"m{s}", step=step)
        run.flush()
    run.track(1.0, name="late")  # a sequence whose first segment the final flush creates
    run.close()
    print(json.dumps({"hash": run.hash, "events": events}))
    """
)


def test_close_syncs_every_segment_and_folder_before_the_final_sidecar(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    run_dir = (tmp_path / ".aim" / "runs" / report["hash"]).resolve()
    events = [(kind, str(Path(path).resolve())) for kind, path in report["events"]]
    final = max(i for i, (kind, path) in enumerate(events) if path == str(run_dir / "run.json"))
    synced_before = {path for kind, path in events[:final] if kind == "fsync"}
    segments = sorted(str(p.resolve()) for p in (run_dir / "seqs").glob("*/*.arrows"))
    assert len(segments) == 101
    missing = [p for p in segments if p not in synced_before]
    assert not missing, f"{len(missing)} segments not fsynced before the final sidecar"
    folders = {str(Path(p).parent) for p in segments} | {str(run_dir / "seqs")}
    assert not folders - synced_before, "folders holding new entries were not fsynced"
