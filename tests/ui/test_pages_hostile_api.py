"""The part-two endpoints as a hostile user meets them: object addresses past int64, thousands of
distribution sequences, finished runs whose files were cut short or lost, and a report written
where it cannot be. Real repositories written by the SDK, damaged on disk, read through the
app (in process) and the CLI (a real subprocess)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import aim_parquet as aim
from aim_parquet.errors import CorruptFileError
from aim_parquet.objects import LogLine
from aim_parquet.storage import compact_repo, open_repo
from aim_parquet.ui.api import distributions as dist_api
from aim_parquet.ui.api.binary import decode
from aim_parquet.ui.api.state import UiState
from tests.conftest import PYTHON, python_env
from tests.ui.conftest import quiet_run


@pytest.fixture
def client_for() -> Iterator[Any]:
    """`client_for(repo)`: an HTTP client of the UI app of `repo`, served by uvicorn in a
    thread on a free port."""
    from aim_parquet.ui.server import create_app
    from tests.ui.test_hostile_api import served

    with ExitStack() as stack:
        yield lambda repo: stack.enter_context(served(create_app(repo)))


def sidecar(root: Path, run_hash: str) -> dict[str, Any]:
    return dict(json.loads((root / ".aim" / "runs" / run_hash / "run.json").read_text()))


def seq_id_of(root: Path, run_hash: str, name: str) -> str:
    return next(s["seq_id"] for s in sidecar(root, run_hash)["sequences"] if s["name"] == name)


def cut_segments(root: Path, run_hash: str, name: str) -> None:
    """Cut every segment of a sequence in the middle of its data (its schema kept), as a disk
    that lost the file's tail would."""
    folder = root / ".aim" / "runs" / run_hash / "seqs" / seq_id_of(root, run_hash, name)
    segments = sorted(folder.glob("*.arrows"))
    assert segments, f"{name} has no segment"
    for path in segments:
        data = path.read_bytes()
        assert data[:4] == b"\xff\xff\xff\xff"  # an IPC stream: continuation, length, schema
        schema_end = 8 + int.from_bytes(data[4:8], "little")
        with path.open("r+b") as f:
            f.truncate(schema_end + (len(data) - schema_end) // 2)


def test_object_addresses_outside_int64_are_refused_not_a_500(
    tmp_path: Path, client_for: Any
) -> None:
    run = quiet_run(tmp_path)
    run.track(aim.Image(np.zeros((4, 4, 3), np.uint8)), name="img", step=0)
    run.close()
    http = client_for(tmp_path)
    base = f"/api/objects/{run.hash}/{seq_id_of(tmp_path, run.hash, 'img')}"
    assert http.get(f"{base}/0/0").status_code == 200
    for step, index in [
        (str(2**63), "0"),  # was a 500 (OverflowError in the reader)
        (str(-(2**63) - 1), "0"),
        ("0", str(2**64)),
        ("+0", "0"),  # int() took these: one object, many URLs (and cache entries)
        ("%200", "0"),
        ("0_0", "0"),
        ("%D9%A3", "0"),  # an Arabic-Indic digit
        ("1e3", "0"),
    ]:
        answer = http.get(f"{base}/{step}/{index}")
        assert answer.status_code == 400, (step, index, answer.text)
        assert answer.json()["error"] == "bad_request" and "int64" in answer.json()["message"]
    assert http.get(f"{base}/{2**63 - 1}/0").status_code == 404  # in range: just not there
    assert http.get(f"{base}/{-(2**63)}/0").status_code == 404
    assert http.get("/api/images", params={"step": str(2**70)}).status_code == 400


def test_distributions_of_thousands_of_sequences_stay_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """50 runs x 200 layers made a 90 MB answer read in 9 s (13.7 s to the page's first
    screen); now the sequences past what fits are counted and not read."""
    run = quiet_run(tmp_path)
    rng = np.random.default_rng(0)
    for layer in range(40):
        for step in range(3):
            for name, bins in (("narrow", 16), ("wide", 512)):
                run.track(aim.Distribution(hist=rng.random(bins), bin_range=(0, 1)), name=name,
                          step=step, context={"layer": layer})  # fmt: skip
    run.close()
    state = UiState(open_repo(tmp_path))
    reads: list[str] = []
    original = dist_api.read_histograms

    def counted(*args: Any) -> Any:
        reads.append(args[2].seq_id)
        return original(*args)

    def values(header: dict[str, Any], read: Any) -> int:
        keys = ("steps", "lo", "hi", "counts", "weights")
        return sum(len(read(s[k])) for s in header["sequences"] for k in keys) + sum(
            len(read(s["heat"]["values"])) for s in header["sequences"]
        )

    monkeypatch.setattr(dist_api, "read_histograms", counted)
    monkeypatch.setattr(dist_api, "MAX_VALUES", 2 * 16 * 16 * 10)  # 10 sequences at 16 bins
    header, read = decode(dist_api.distributions(state, "distributions.name == 'narrow'", 400, 16))
    assert header["count"] == 40 and header["listed"] == len(header["sequences"]) == 10
    assert len(reads) == 10  # the other 30 are counted, not read
    assert values(header, read) <= dist_api.MAX_VALUES
    # stored histograms of 512 bins on a 16-bin heat map: fewer fit, still within the bound
    header, read = decode(dist_api.distributions(state, "distributions.name == 'wide'", 400, 16))
    assert header["count"] == 40 and 1 <= header["listed"] < 10
    assert values(header, read) <= dist_api.MAX_VALUES
    monkeypatch.setattr(dist_api, "MAX_VALUES", 2_000_000)
    header, _ = decode(dist_api.distributions(state, "", 400, 128))
    assert header["count"] == header["listed"] == 80  # an answer that fits is whole


def make_cut_repo(root: Path) -> tuple[str, str]:
    """A finished run of every object kind whose files lost their tails, and a healthy run
    that tracked a step twice (its catalogue counts both writes: no false alarm)."""
    run = quiet_run(root)
    rng = np.random.default_rng(1)
    for i in range(400):
        run.track(LogLine(f"line {i}"), name="logs", step=i)
    for _ in range(3):
        run.log_info("started")
    for step in range(4):
        run.track(aim.Text(f"text {step}"), name="texts", step=step)
        run.track(aim.Image(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)), name="img", step=step)
        run.track(aim.Distribution(rng.normal(size=50)), name="dist", step=step)
    run.close()
    for name in ("logs", "__log_records", "texts", "img", "dist"):
        cut_segments(root, run.hash, name)
    twice = quiet_run(root)
    twice.track(LogLine("first"), name="logs", step=0)
    twice.track(LogLine("again"), name="logs", step=0)
    twice.track(aim.Text("a"), name="texts", step=0)
    twice.track(aim.Text("b"), name="texts", step=0)
    twice.close()
    return run.hash, twice.hash


def test_a_finished_run_whose_files_were_cut_says_so_on_every_listing(
    tmp_path: Path, client_for: Any
) -> None:
    cut, twice = make_cut_repo(tmp_path)
    http = client_for(tmp_path)
    logs = http.get(f"/api/runs/{cut}/logs").json()
    # it said total 0 and no problem: the page showed "This run has no terminal output"
    assert logs["total"] < 400
    assert "400 lines" in logs["problem"] and "verify --repair" in logs["problem"]
    records = http.get(f"/api/runs/{cut}/log-records").json()
    assert records["total"] < 3 and "3 records" in records["problem"]
    for path, name in [("/api/texts", "texts"), ("/api/images", "img")]:
        answer = http.get(path, params={"q": f'run.hash == "{cut}"'}).json()
        reasons = [u["reason"] for u in answer["unreadable"] if u["name"] == name]
        assert reasons and "cut short or lost" in reasons[0], answer["unreadable"]
    header, _ = decode(http.get("/api/distributions", params={"q": f'run.hash == "{cut}"'}).content)
    assert [u["name"] for u in header["unreadable"]] == ["dist"]
    # a step tracked twice is one line / one text: nothing is said about it
    assert http.get(f"/api/runs/{twice}/logs").json() == {
        "total": 1, "offset": 0, "lines": [[0, "again"]], "matches": None, "match_count": 0,
        "problem": None,
    }  # fmt: skip
    texts = http.get("/api/texts", params={"q": f'run.hash == "{twice}"'}).json()
    assert texts["total"] == 1 and texts["unreadable"] == []


def test_a_missing_compacted_file_is_named_at_once(tmp_path: Path, client_for: Any) -> None:
    """It was retried for ~2 s per request and then called "files kept changing", and the run
    page went on to say the run had no metrics."""
    run = quiet_run(tmp_path)
    for step in range(5):
        run.track(float(step), name="loss", step=step)
    run.close()
    compact_repo(open_repo(tmp_path), rewrite_all=True)
    (parquet,) = (tmp_path / ".aim" / "runs" / run.hash / "compacted").glob("metrics-*.parquet")
    parquet.unlink()
    with pytest.raises(CorruptFileError, match=r"metrics-\d+\.parquet is missing.*did not change"):
        next(
            iter(aim.Repo(str(tmp_path)).query_metrics("", report_mode=0).iter())
        ).values.sparse_numpy()
    header, _ = decode(
        client_for(tmp_path)
        .get("/api/metrics/search", params={"q": f'run.hash == "{run.hash}"'})
        .content
    )
    (bad,) = header["unreadable"]
    assert "is missing" in bad["reason"] and "kept changing" not in bad["reason"]


def test_report_written_where_it_cannot_be_leaves_nothing_behind(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    run = quiet_run(repo)
    run.track(1.0, name="loss", step=0)
    run.close()
    out = tmp_path / "out"
    (out / "report.html").mkdir(parents=True)  # the output names a folder
    before = sorted(p.name for p in out.iterdir())
    done = subprocess.run(
        [PYTHON, "-m", "aim_parquet", "--repo", str(repo), "report", "--output", str(out / "report.html")],
        capture_output=True, text=True, timeout=120, env=python_env(),
    )  # fmt: skip
    assert done.returncode == 1 and "cannot write" in done.stderr, done.stderr
    assert sorted(p.name for p in out.iterdir()) == before  # no `.report.html.tmp` left
    done = subprocess.run(
        [PYTHON, "-m", "aim_parquet", "--repo", str(repo), "report", "--output", str(out / "ok.html")],
        capture_output=True, text=True, timeout=120, env=python_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["ok.html", "report.html"]


def test_report_images_carry_their_size_and_stop_reading_at_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aim_parquet.storage.online import object_read
    from aim_parquet.ui import report

    run = quiet_run(tmp_path)
    run.name = "pictures"
    for k in range(6):
        run.track([aim.Image(np.full((10, 20, 3), k * 40, np.uint8)) for _ in range(2)],
                  name=f"img{k}", step=0)  # fmt: skip
    run.track(1.0, name="loss", step=0)
    run.close()
    reads: list[str] = []
    original = object_read.read_object_rows

    def counted(*args: Any, **kwargs: Any) -> Any:
        if "payload" in args[3]:
            reads.append(args[2].name)
        return original(*args, **kwargs)

    monkeypatch.setattr(object_read, "read_object_rows", counted)
    monkeypatch.setattr(report, "MAX_IMAGES", 3)
    data = report.report_data(UiState(open_repo(tmp_path)), "", None, images=True, width=400)
    assert data["images"]["count"] == 12 and len(data["images"]["items"]) == 3
    assert len(reads) == 2  # two sequences of two images hold the first three; no more read
    assert {(i["width"], i["height"]) for i in data["images"]["items"]} == {(20, 10)}
