"""`aim-parquet up` on a repository with links and FIFOs planted where files belong, a dead run,
and edits of text that is not Unicode: the page keeps working for the other runs, names the bad
ones, and nothing outside the repository is touched (FORMAT.md, "Links, special files and
bounds")."""

from __future__ import annotations

import json
import os
from pathlib import Path

from aim_parquet.ui.api.binary import decode
from tests.ui.conftest import quiet_run, start_server, stop_server
from tests.ui.test_api import CHANGE, client


def _finished(repo: Path, name: str, points: int = 20) -> str:
    run = quiet_run(repo, experiment="hostile")
    run.name = name
    for step in range(points):
        run.track(float(step), name="loss", step=step)
    run.close()
    return str(run.hash)


def _segment(repo: Path, run_hash: str) -> Path:
    return sorted((repo / ".aim" / "runs" / run_hash).glob("seqs/*/*.arrows"))[0]


def test_links_fifos_and_a_dead_run_never_fail_the_page(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    outside = tmp_path / "outside"
    outside.mkdir()
    precious = outside / "precious"
    precious.write_text("keep me")
    healthy = _finished(repo, "healthy")
    linked = _finished(repo, "linked segment")
    fifo = _finished(repo, "fifo segment")
    locked = _finished(repo, "linked lock")
    dead = _finished(repo, "dead writer")
    seg = _segment(repo, linked)
    seg.unlink()
    seg.symlink_to(precious)
    seg = _segment(repo, fifo)
    seg.unlink()
    os.mkfifo(seg)
    lock = repo / ".aim" / "runs" / locked / "lock"
    lock.unlink(missing_ok=True)
    lock.symlink_to(precious)
    sidecar = repo / ".aim" / "runs" / dead / "run.json"  # a writer that died: no end_time
    data = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**data, "end_time": None}))
    seg = _segment(repo, dead)
    seg.unlink()
    os.mkfifo(seg)

    server = start_server(repo)
    try:
        with client(server) as http:
            table = http.get("/api/runs").json()  # metadata only: every run is listed
            assert sorted(table["columns"]["hash"]) == sorted([healthy, linked, fifo, locked, dead])
            answer = http.get(
                "/api/metrics/search",
                params={"q": "metric.name == 'loss'", "width": 200, "chart_by": "metric.name"},
            )
            assert answer.status_code == 200, answer.text
            header, _buffers = decode(answer.content)
            drawn = {s["run"] for chart in header["charts"] for s in chart["series"]}
            assert drawn == {healthy, locked}
            reasons = {u["run"]: u["reason"] for u in header["unreadable"]}  # named, with advice
            assert set(reasons) == {linked, fifo, dead}
            assert "symbolic link" in reasons[linked] and "FIFO" in reasons[fifo]
            assert all("verify --repair" in u["advice"] for u in header["unreadable"])
            live = http.get(
                "/api/metrics/live",
                params={"q": "metric.name == 'loss'", "width": 200, "cursor": f"{dead}:x:0"},
            )
            assert live.status_code == 200, live.text

            refused = http.post(f"/api/runs/{locked}", json={"name": "renamed"}, headers=CHANGE)
            assert refused.status_code >= 400 and "symbolic link" in refused.json()["message"]
            before = (repo / ".aim" / "runs" / healthy / "run.json").read_bytes()
            bad = http.post(
                f"/api/runs/{healthy}",
                content=b'{"name": "caf\\udce9", "tags": ["ok"]}',  # a lone surrogate, in JSON
                headers={**CHANGE, "Content-Type": "application/json"},
            )
            assert bad.status_code == 400 and "lone surrogate" in bad.json()["message"]
            bad_tag = http.post(
                f"/api/runs/{healthy}",
                content=b'{"tags": ["\\ud800"]}',
                headers={**CHANGE, "Content-Type": "application/json"},
            )
            assert bad_tag.status_code == 400
            assert (repo / ".aim" / "runs" / healthy / "run.json").read_bytes() == before
    finally:
        code, err = stop_server(server)
    assert code == 0, err
    assert precious.read_text() == "keep me" and lock.is_symlink()
