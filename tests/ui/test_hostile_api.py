"""The server as a hostile user meets it: a query that takes long while other tabs ask for
pages, SIGTERM with reads in flight, the repository deleted under it, reverse proxies in front of
it, odd tokens, huge and tiny values, steps near 2**62, and the notebook magic next to another
server. Real processes, a real proxy, real HTTP."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import psutil
import pytest

import aim_parquet as aim
from aim_parquet.query.planner import QueryPlan
from aim_parquet.ui.api.binary import decode
from aim_parquet.ui.server import create_app
from tests.conftest import PYTHON, python_env
from tests.ui.conftest import UiServer, quiet_run, start_server, stop_server
from tests.ui.proxy import reverse_proxy

TIMEOUT = httpx.Timeout(30.0)
CHANGE = {"X-Requested-By": "aim-parquet"}
SLOW_TERM = "len(str([run.hparams] * 20000)) > 0"
"""About 0.9M characters built per run (params of `slow_repo`): tens of ms of real work."""


def slow_repo(root: Path, runs: int) -> Path:
    """Runs whose params make `SLOW_TERM` cost real time per run (a query, not a sleep)."""
    for i in range(runs):
        run = quiet_run(root, log_system_params=False)
        run["hparams"] = {"blob": "x" * 30}
        run.track(float(i), name="loss", step=0)
        run.close()
    return root


def slow_query(terms: int) -> str:
    return " and ".join([SLOW_TERM] * terms)


@contextmanager
def served(app: Any) -> Iterator[httpx.Client]:
    """`app` served by uvicorn in a thread on a free port; a client for it."""
    import uvicorn

    from aim_parquet.ui.server import bind

    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        with httpx.Client(base_url=f"http://localhost:{port}", timeout=TIMEOUT) as http:
            for _ in range(400):  # poll until it answers
                try:
                    http.get("/api/info")
                    break
                except httpx.TransportError:
                    threading.Event().wait(0.05)
            yield http
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_a_query_still_evaluating_does_not_hold_up_other_tabs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The slow query is stopped *inside* its evaluation over the runs (where the run index
    lock used to be held): the other tab's runs table, metric chart and names still answer."""
    entered, release = threading.Event(), threading.Event()
    original = QueryPlan.matches_run

    def evaluating(self: QueryPlan, view: Any) -> bool:
        if "slow" in self.text:
            entered.set()
            assert release.wait(30), "the test never released the slow query"
        return original(self, view)

    monkeypatch.setattr(QueryPlan, "matches_run", evaluating)
    result: dict[str, Any] = {}

    def slow_tab() -> None:
        with httpx.Client(base_url=base, timeout=60) as tab:
            # (`run.active` is left to the interpreter: the prefilter's columns do not decide it,
            # so every run is evaluated)
            query = "run.name != 'slow' and not run.active"
            result["slow"] = tab.get("/api/runs", params={"q": query})

    with served(create_app(slow_repo(tmp_path, 3))) as http:
        base = str(http.base_url)
        worker = threading.Thread(target=slow_tab)
        worker.start()
        try:
            assert entered.wait(30)
            other = httpx.Client(base_url=base, timeout=10)
            assert other.get("/api/runs").json()["count"] == 3
            header, _ = decode(other.get("/api/metrics/search").content)
            assert header["series_count"] == 3
            assert other.get("/api/metrics/names").json()["metrics"][0]["name"] == "loss"
            other.close()
            assert "slow" not in result
        finally:
            release.set()
            worker.join(60)
    assert result["slow"].status_code == 200 and result["slow"].json()["count"] == 3


def test_a_query_past_the_time_limit_is_stopped_with_a_clear_error(tmp_path: Path) -> None:
    slow_repo(tmp_path, 4)
    with served(create_app(tmp_path, query_time_s=0.0)) as http:
        for path in ("/api/runs", "/api/metrics/search"):
            answer = http.get(path, params={"q": slow_query(1)})
            assert answer.status_code == 400, answer.text
            body = answer.json()
            assert body["error"] == "query_time"
            assert "stopped after 1 of 4 runs" in body["message"], body
        assert http.get("/api/runs").status_code == 400  # any query over 2+ runs, at 0 s
    with served(create_app(tmp_path)) as http:
        assert http.get("/api/runs", params={"q": slow_query(1)}).json()["count"] == 4


def test_sigterm_answers_reads_in_flight_503_and_exits_0_without_tracebacks(
    tmp_path: Path,
) -> None:
    server = start_server(slow_repo(tmp_path, 60))
    proc = psutil.Process(server.process.pid)
    result: dict[str, Any] = {}
    try:
        with httpx.Client(base_url=f"http://localhost:{server.port}", timeout=TIMEOUT) as http:
            assert http.get("/api/info").status_code == 200
        threads = proc.num_threads()

        def slow_tab() -> None:
            with httpx.Client(base_url=f"http://localhost:{server.port}", timeout=60) as http:
                try:
                    result["answer"] = http.get("/api/runs", params={"q": slow_query(6)})
                except httpx.TransportError as exc:
                    result["answer"] = exc

        worker = threading.Thread(target=slow_tab)
        worker.start()
        for _ in range(3000):  # until the read runs in a worker thread of the pool
            if proc.num_threads() > threads:
                break
            threading.Event().wait(0.01)
        assert proc.num_threads() > threads, "the slow read never reached the pool"
    finally:
        code, err = stop_server(server)
        worker.join(60)
    assert code == 0, err
    assert "Traceback" not in err and "Exception in ASGI application" not in err, err
    answer = result["answer"]
    assert isinstance(answer, httpx.Response), answer
    assert answer.status_code == 503 and answer.json()["error"] == "stopping", answer.text


def test_the_repository_deleted_under_the_server_is_said_so(tmp_path: Path) -> None:
    run = quiet_run(tmp_path)
    run.track(1.0, name="loss", step=0)
    run.close()
    with served(create_app(tmp_path)) as http:
        assert http.get("/api/runs").json()["count"] == 1
        import shutil

        shutil.rmtree(tmp_path / ".aim")
        for path in ("/api/runs", "/api/metrics/search", "/api/metrics/names"):
            answer = http.get(path)
            assert answer.status_code == 404, (path, answer.text)
            assert answer.json()["error"] == "repo_missing"
            assert "is gone" in answer.json()["message"] and str(tmp_path) in answer.text


@pytest.fixture(scope="module")
def proxied_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("proxied")
    for i in range(2):
        run = quiet_run(root, log_system_params=False)
        run["hparams"] = {"lr": 0.1 * (i + 1)}
        run.track(1.0, name="loss", step=0)
        run.close()
    return root


def test_changes_work_behind_a_reverse_proxy_that_rewrites_host(proxied_repo: Path) -> None:
    server = start_server(proxied_repo, "--base-path", "/aim")
    try:
        with reverse_proxy(server.port, "/aim", host="rewrite") as proxy_port:
            origin = f"http://127.0.0.1:{proxy_port}"
            with httpx.Client(base_url=origin, timeout=TIMEOUT) as http:
                runs = http.get("/aim/api/runs").json()
                run_hash = runs["columns"]["hash"][0]
                # what the page does: its Origin is the proxy's, the Host the server sees is its own
                headers = {**CHANGE, "Origin": origin}
                answer = http.post(
                    f"/aim/api/runs/{run_hash}/archive", json={"archived": True}, headers=headers
                )
                assert answer.status_code == 200, answer.text
                assert aim.Repo(str(proxied_repo)).get_run(run_hash).archived is True
                answer = http.post(
                    f"/aim/api/runs/{run_hash}/archive", json={"archived": False}, headers=headers
                )
                assert answer.status_code == 200, answer.text
                evil = {**CHANGE, "Origin": "http://evil.example"}
                refused = http.post(f"/aim/api/runs/{run_hash}/archive", json={}, headers=evil)
                assert refused.status_code == 403
                # the prefix without its slash stays on the proxy (a relative redirect)
                bare = http.get("/aim?q=x")
                assert bare.status_code in (307, 308)
                assert bare.headers["location"] == "aim/?q=x"
                page = http.get("/aim", follow_redirects=True)
                assert page.status_code == 200 and str(page.url) == f"{origin}/aim/"
    finally:
        assert stop_server(server)[0] == 0


def test_a_token_on_loopback_serves_a_proxy_that_passes_its_public_host(
    proxied_repo: Path,
) -> None:
    for extra, expected in (((), 403), (("--token", "s3cret"), 200)):
        server = start_server(proxied_repo, *extra)
        try:
            with reverse_proxy(server.port, "/", host="preserve") as proxy_port:
                public = {"Host": "tracker.example.org"}
                with httpx.Client(
                    base_url=f"http://127.0.0.1:{proxy_port}", timeout=TIMEOUT
                ) as http:
                    bearer = {"Authorization": "Bearer s3cret"} if extra else {}
                    answer = http.get("/api/runs", headers={**public, **bearer})
                    assert answer.status_code == expected, answer.text
                    if extra:  # the token guards it: without it, nothing
                        assert http.get("/api/runs", headers=public).status_code == 401
        finally:
            assert stop_server(server)[0] == 0


def test_a_token_with_any_characters_works_from_the_printed_url(proxied_repo: Path) -> None:
    token = "p@ss w0rd;x=1/é"
    server = start_server(proxied_repo, "--token", token)
    try:
        assert server.url.endswith("?token=" + quote(token, safe=""))
        with httpx.Client(timeout=TIMEOUT, follow_redirects=True) as browser:
            page = browser.get(server.url)  # 303 with the cookie, then the page
            assert page.status_code == 200 and "static/js/pages/runs.js" in page.text
            runs = browser.get(f"http://localhost:{server.port}/api/runs")
            assert runs.status_code == 200 and runs.json()["count"] == 2
    finally:
        assert stop_server(server)[0] == 0


def extreme_repo(root: Path) -> dict[str, str]:
    run = quiet_run(root, log_system_params=False)
    values = {
        "huge": [1e308, -1e308, 3e38],
        "tiny": [1e-308, 5e-324, 1e-45],
        "counter": [1_234_567_891.0, 1_234_567_892.0, 2_000_000_001.0],
        "offset": [1e9 + 0.25, 1e9 + 0.5, 1e9 + 0.75],
        "plain": [0.5, 0.25, 0.125],
    }
    for name, series_values in values.items():
        for step, value in enumerate(series_values):
            run.track(value, name=name, step=step)
    run.track(1.0, name="bigstep", step=0)
    run.track(2.0, name="bigstep", step=2**62 + 1)
    run.close()
    return {"hash": run.hash}


def test_values_float32_cannot_carry_arrive_exactly(tmp_path: Path) -> None:
    extreme_repo(tmp_path)
    sdk = {
        m.name: m.values.tolist()
        for m in aim.Repo(str(tmp_path)).query_metrics("metric.name != 'bigstep'")
    }
    with served(create_app(tmp_path)) as http:
        header, read = decode(http.get("/api/metrics/search").content)
    charts = {c["title"]: c for c in header["charts"]}
    for name, expected in sdk.items():
        (series,) = charts[name]["series"]
        values = read(series["y"])
        shown = values[~np.isnan(values)].tolist()
        assert shown == expected, (name, series["y"][2], shown, expected)
        assert series["y"][2] == ("f4" if name == "plain" else "f8"), name
    big = charts["bigstep"]
    assert big["max_step"] == 2**62 + 1 and big["series"][0]["last_step"] == 2**62 + 1


def test_values_dtype_rules() -> None:
    from aim_parquet.ui.api.binary import values_dtype

    assert values_dtype(np.array([0.1, 0.2, np.nan])) == "f4"
    assert values_dtype(np.array([np.nan, np.nan])) == "f4"
    assert values_dtype(np.array([1e39])) == "f8"
    assert values_dtype(np.array([0.0, 1e-40])) == "f8"
    assert values_dtype(np.array([16_777_217.0])) == "f8"  # 2**24 + 1
    assert values_dtype(np.array([16_777_216.0, 3.0])) == "f4"
    assert values_dtype(np.array([1e9 + 0.25, 1e9 + 0.5])) == "f8"
    assert values_dtype(np.array([1e9, 2e9 + 1.5])) == "f4"  # float32's rounding is invisible


def test_the_notebook_magic_never_shows_another_servers_page(
    ui_server: UiServer, tmp_path: Path
) -> None:
    from aim_parquet.ui import notebook

    run = quiet_run(tmp_path)
    run.track(1.0, name="loss", step=0)
    run.close()
    try:
        with pytest.raises(RuntimeError, match=rf"cannot listen on .*:{ui_server.port}"):
            notebook.start(["--repo", str(tmp_path), "--port", str(ui_server.port)])
    finally:
        notebook.stop_all()


def test_the_notebook_server_keeps_answering_after_its_log_grows(tmp_path: Path) -> None:
    """Its output goes to files: a pipe nobody reads stopped the server once 64 KiB of warnings
    (here: malformed requests, one log line each) had filled it."""
    from aim_parquet.ui import notebook

    run = quiet_run(tmp_path)
    run.track(1.0, name="loss", step=0)
    run.close()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    try:
        url = notebook.start(["--repo", str(tmp_path), "--port", str(port)])
        for _ in range(2500):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(b"NOT HTTP\r\n\r\n")
                assert sock.recv(64).startswith(b"HTTP/1.1 400")
        answer = httpx.get(url + "api/runs", timeout=10)
        assert answer.status_code == 200 and answer.json()["count"] == 1
    finally:
        notebook.stop_all()


def test_up_help_says_what_a_token_does_on_loopback() -> None:
    out = subprocess.run(
        [PYTHON, "-m", "aim_parquet", "up", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env=python_env(),
    )
    text = re.sub(r"\s+", " ", out.stdout)
    assert "reverse proxy" in text and "replaces the localhost-name check" in text


def test_charts_group_by_a_param_key_that_holds_dots(tmp_path: Path) -> None:
    """The runs table shows `{"dotted.key": 5}` as column hparams.dotted.key = 5 and the
    page colours by it; grouping charts by the same field put every run under None."""
    for value in (5, 6):
        run = quiet_run(tmp_path, log_system_params=False)
        run["hparams"] = {"dotted.key": value, "nested": {"key": value}}
        run.track(1.0, name="loss", step=0)
        run.close()
    with served(create_app(tmp_path)) as http:
        for field in ("run.hparams.dotted.key", "run.hparams.nested.key"):
            header, _ = decode(http.get("/api/metrics/search", params={"chart_by": field}).content)
            assert sorted(c["title"] for c in header["charts"]) == [f"{field}=5", f"{field}=6"]


KILLED_WRITER = """
import sys, time
import aim_parquet as aim
run = aim.Run(repo=sys.argv[1], system_tracking_interval=None, capture_terminal_logs=False)
for step in range(10):
    run.track(float(step), name="loss", step=step)
run.flush()
print(run.hash, flush=True)
time.sleep(120)
"""


def test_a_killed_run_lasted_until_its_last_flush_not_until_now(tmp_path: Path) -> None:
    writer = subprocess.Popen(
        [PYTHON, "-c", KILLED_WRITER, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        env=python_env(),
    )
    assert writer.stdout is not None
    run_hash = writer.stdout.readline().strip()
    writer.kill()
    writer.communicate(timeout=60)
    sidecar = tmp_path / ".aim" / "runs" / run_hash / "run.json"
    with served(create_app(tmp_path)) as http:
        table = http.get("/api/runs").json()
        (i,) = [n for n, h in enumerate(table["columns"]["hash"]) if h == run_hash]
        assert table["columns"]["active"][i] is False and table["columns"]["ended"][i] is None
        created = table["columns"]["created"][i]
        duration = table["columns"]["duration"][i]
        assert duration == pytest.approx(sidecar.stat().st_mtime - created, abs=1e-6)


def sparse_repo(root: Path, runs: int) -> list[str]:
    """Runs that share `lr` and each have two params of their own."""
    hashes = []
    for i in range(runs):
        run = quiet_run(root, log_system_params=False)
        run["lr"] = 0.1
        run["cfg"] = {f"k{i}": i, f"j{i}": str(i)}
        run.track(1.0, name="loss", step=0)
        run.close()
        hashes.append(run.hash)
    return hashes


def test_params_few_runs_have_are_sent_sparse_when_asked(tmp_path: Path) -> None:
    """The table's columnar JSON had a list per param key with a value or null per run: 2,000
    runs with 5 keys of their own each made 100 MB (10,000 runs would make gigabytes)."""
    hashes = sparse_repo(tmp_path, 40)
    with served(create_app(tmp_path)) as http:
        dense = http.get("/api/runs").json()
        answer = http.get("/api/runs", params={"sparse": "1"})
    table = answer.json()
    assert all(isinstance(v, list) and len(v) == 40 for v in dense["params"].values())
    assert table["params"]["lr"] == [0.1] * 40  # every run has it: a plain list
    order = table["columns"]["hash"]
    for i, run_hash in enumerate(hashes):
        column = table["params"][f"cfg.k{i}"]
        assert column == {"rows": [order.index(run_hash)], "values": [i]}
        assert dense["params"][f"cfg.k{i}"][order.index(run_hash)] == i
    cells = sum(len(v) if isinstance(v, list) else len(v["rows"]) for v in table["params"].values())
    assert cells == 40 + 2 * 40  # what the runs have, not keys x runs (80 x 40 = 3,200)
    assert len(json.dumps(table["params"])) * 5 < len(json.dumps(dense["params"]))


def test_runs_table_metrics_come_in_the_order_asked(tmp_path: Path) -> None:
    run = quiet_run(tmp_path, log_system_params=False)
    for name in ("loss", "accuracy"):
        for subset in ("val", "train"):
            run.track(0.5, name=name, step=0, context={"subset": subset})
    run.close()
    with served(create_app(tmp_path)) as http:
        table = http.get("/api/runs", params={"metrics": "loss,accuracy"}).json()
    assert [m["label"] for m in table["metrics"]] == [
        "loss (subset=train)",
        "loss (subset=val)",
        "accuracy (subset=train)",
        "accuracy (subset=val)",
    ]


def test_a_wildcard_bind_prints_urls_a_browser_can_open(proxied_repo: Path) -> None:
    """http://0.0.0.0:PORT/ is what `--host 0.0.0.0` printed: Chrome refuses to open it."""
    server = start_server(proxied_repo, "--host", "0.0.0.0", "--token", "t0k")
    try:
        urls = [line.split()[0] for line in server.first_lines if line.strip().startswith("http")]
        assert urls == [
            f"http://localhost:{server.port}/?token=t0k",
            f"http://{socket.gethostname()}:{server.port}/?token=t0k",
        ]
        assert "0.0.0.0" not in "\n".join(server.first_lines)
        answer = httpx.get(
            f"http://127.0.0.1:{server.port}/api/info", headers={"Authorization": "Bearer t0k"}
        )
        assert answer.status_code == 200
    finally:
        assert stop_server(server)[0] == 0


def test_points_without_an_epoch_are_counted_not_silently_dropped(tmp_path: Path) -> None:
    run = quiet_run(tmp_path, log_system_params=False)
    for step in range(30):
        run.track(float(step), name="loss", step=step, epoch=step // 10 if step % 3 else None)
    run.close()
    with served(create_app(tmp_path)) as http:
        header, _ = decode(http.get("/api/metrics/search", params={"x": "epoch"}).content)
        (series,) = header["charts"][0]["series"]
        assert series["no_x"] == 10 and series["count"] == 30
        header, _ = decode(http.get("/api/metrics/search", params={"x": "step"}).content)
        assert header["charts"][0]["series"][0]["no_x"] == 0
