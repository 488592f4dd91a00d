"""`aim-parquet export --output s3://...` against a local S3-compatible server (moto's server mode
on 127.0.0.1, a stand-in for the client path: see s3_server.py). Read back with pyarrow, polars
and DuckDB through the README's blocks; uploads killed mid-way publish nothing."""

from __future__ import annotations

import json
import math
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from aim_parquet.errors import AimParquetError
from aim_parquet.format.paths import EXPORT_POINTER_FILENAME as POINTER_FILENAME
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.maintenance.export import export_dataset
from tests.conftest import PYTHON, ROOT, python_env
from tests.integration.repo_snapshots import rows, write_rich_run

# `make test` collects this module without moto installed (its marker deselects the tests);
# `make test-objectstore` installs requirements-objectstore.txt first.
pytest.importorskip("moto", reason="moto is installed by `make test-objectstore`")

from tests.objectstore.s3_server import S3Server  # noqa: E402

pytestmark = pytest.mark.objectstore

BLOCK_RE = re.compile(r"<!-- outgrowing: ([\w-]+) -->\s*```python\n(.*?)```", re.DOTALL)


@pytest.fixture(scope="module")
def server() -> Iterator[S3Server]:
    srv = S3Server()
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def s3_env(server: S3Server, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The usual AWS environment, pointed at the local server; set for this process (the
    readers) and returned for the exporting subprocesses."""
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": server.endpoint,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return {**python_env(), **env}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("s3-repo")
    for seed in range(3):
        write_rich_run(root, n=60, seed=seed)
    return root


def s3fs(server: S3Server) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(
        endpoint_override=f"127.0.0.1:{server.port}",
        scheme="http",
        region="us-east-1",
        access_key="testing",
        secret_key="testing",
        allow_bucket_creation=True,
    )


def make_bucket(server: S3Server, name: str) -> pafs.S3FileSystem:
    fs = s3fs(server)
    fs.create_dir(name)
    return fs


def export_cmd(repo: Path, uri: str, *extra: str) -> list[str]:
    return [PYTHON, "-m", "aim_parquet", "--repo", str(repo), "export", "--output", uri, *extra]


def export(repo: Path, uri: str, env: dict[str, str], *extra: str) -> str:
    proc = subprocess.run(export_cmd(repo, uri, *extra), env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def pointer(fs: pafs.FileSystem, root: str) -> dict[str, Any] | None:
    path = f"{root}/{POINTER_FILENAME}"
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        return None
    with fs.open_input_stream(path) as f:
        data: dict[str, Any] = json.load(f)
    return data


def keys(fs: pafs.FileSystem, root: str) -> set[str]:
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    return {i.path[len(root) + 1 :] for i in infos if i.type == pafs.FileType.File}


def local_export(repo: Path, out: Path) -> dict[str, list[dict[str, Any]]]:
    export_dataset(RepoLayout(repo), out, include_objects=True)
    return {
        p.relative_to(out).as_posix(): rows(pq.read_table(p))
        for p in sorted(out.rglob("*.parquet"))
    }


def published_rows(fs: pafs.FileSystem, root: str) -> dict[str, list[dict[str, Any]]]:
    """What a reader following the documented path sees: {path inside the export: rows}."""
    ptr = pointer(fs, root)
    assert ptr is not None
    out = {}
    for f in ptr["files"]:
        relative = f["path"].removeprefix(ptr["prefix"] + "/")
        out[relative] = rows(pq.read_table(f"{root}/{f['path']}", filesystem=fs))
    return out


def test_export_to_s3_holds_what_a_local_export_holds(
    server: S3Server, s3_env: dict[str, str], repo: Path, tmp_path: Path
) -> None:
    fs = make_bucket(server, "same")
    stdout = export(repo, "s3://same/team/exp", s3_env, "--objects")
    assert "to s3://same/team/exp" in stdout and POINTER_FILENAME in stdout
    ptr = pointer(fs, "same/team/exp")
    assert ptr is not None and ptr["format"] == "aim_parquet.export"
    assert re.fullmatch(r"exports/\d{8}T\d{6}Z-[0-9a-f]{8}", ptr["prefix"])
    assert len(ptr["metrics"]) == 3 and set(ptr["objects"]) == {
        "aim.text",
        "aim.distribution",
        "aim.image",
    }
    for f in ptr["files"]:  # every listed file is there, whole
        assert fs.get_file_info(f"same/team/exp/{f['path']}").size == f["bytes"]
    assert published_rows(fs, "same/team/exp") == local_export(repo, tmp_path / "local")


def readme_blocks() -> dict[str, str]:
    return dict(BLOCK_RE.findall((ROOT / "README.md").read_text()))


def test_readme_blocks_read_the_export_back(
    server: S3Server, s3_env: dict[str, str], repo: Path, tmp_path: Path
) -> None:
    """pyarrow, polars and DuckDB read `s3://bucket/exp` with the README's lines (DuckDB's httpfs
    extension would need a download, so DuckDB queries the pyarrow datasets, as documented)."""
    make_bucket(server, "bucket")
    export(repo, "s3://bucket/exp", s3_env)
    expected = local_export(repo, tmp_path / "local")
    n_loss = sum(
        1 for name, table in expected.items() if name.startswith("metrics/")
        for row in table if row["name"] == "loss"
    )  # fmt: skip
    blocks = readme_blocks()
    namespace: dict[str, Any] = {}
    exec(compile(blocks["s3-pyarrow"], "README.md:s3-pyarrow", "exec"), namespace)
    assert namespace["loss"].num_rows == n_loss > 0
    assert namespace["runs"].count_rows() == 3
    exec(compile(blocks["s3-polars"], "README.md:s3-polars", "exec"), namespace)
    loss = namespace["loss"]
    assert loss.height == n_loss
    assert sorted(set(loss["params.hparams.lr"].to_list())) == [0.001, 0.002, 0.003]
    exec(compile(blocks["s3-duckdb"], "README.md:s3-duckdb", "exec"), namespace)
    frame = namespace["loss"]
    assert len(frame) == n_loss
    assert set(frame["lr"]) == {0.001, 0.002, 0.003}
    values = sorted(
        (row["run_hash"], row["context"], row["step"]) for name, table in expected.items()
        if name.startswith("metrics/") for row in table if row["name"] == "loss"
    )  # fmt: skip
    assert len(values) == len(set(values))  # one row per step, as queries return


def kill_exporter_when_held(
    server: S3Server, cmd: list[str], env: dict[str, str], hold: Any
) -> None:
    """Start an export, hold the write `hold` picks, SIGKILL the exporter, answer the write 503."""
    server.gate.arm(hold)
    with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        try:
            assert server.gate.held.wait(120), proc.communicate(timeout=60)
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=60)
        finally:
            server.gate.release()
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == -signal.SIGKILL


def test_killed_uploads_leave_the_previous_export_whole(
    server: S3Server, s3_env: dict[str, str], tmp_path: Path
) -> None:
    fs = make_bucket(server, "interrupted")
    root = "interrupted/exp"
    repo = tmp_path / "repo"
    write_rich_run(repo, n=40, seed=1)
    uri = f"s3://{root}"
    # the first export is killed during its data upload: nothing is visible, not even a pointer
    uploads = iter(range(1000))
    kill_exporter_when_held(
        server, export_cmd(repo, uri), s3_env, lambda p: "/exports/" in p and next(uploads) == 4
    )
    assert pointer(fs, root) is None
    assert any(k.startswith("exports/") for k in keys(fs, root))  # a partial upload is there
    export(repo, uri, s3_env)
    first = pointer(fs, root)
    assert first is not None
    seen = published_rows(fs, root)
    assert len(seen) == 2  # runs.parquet and one metrics file
    write_rich_run(repo, n=40, seed=2)  # a second run: the next export differs
    # killed mid-way through the data of the second export
    uploads = iter(range(1000))
    kill_exporter_when_held(
        server, export_cmd(repo, uri), s3_env, lambda p: "/exports/" in p and next(uploads) == 4
    )
    assert pointer(fs, root) == first and published_rows(fs, root) == seen
    # killed after every data file is uploaded, as it writes the pointer
    kill_exporter_when_held(
        server, export_cmd(repo, uri), s3_env, lambda p: p.endswith(f"/{POINTER_FILENAME}")
    )
    assert pointer(fs, root) == first and published_rows(fs, root) == seen
    prefixes = {k.split("/")[1] for k in keys(fs, root) if k.startswith("exports/")}
    assert len(prefixes) == 4  # three partial uploads (unreferenced) and the first export
    # an old leftover (an upload killed long ago) goes at the next export; recent ones stay
    stale = "exports/20200101T000000Z-0123abcd/metrics/x.parquet"
    with fs.open_output_stream(f"{root}/{stale}") as out:
        out.write(b"partial")
    export(repo, uri, s3_env)
    latest = pointer(fs, root)
    assert latest is not None and latest["prefix"] != first["prefix"]
    assert len(latest["metrics"]) == 2
    left = {k.split("/")[1] for k in keys(fs, root) if k.startswith("exports/")}
    assert "20200101T000000Z-0123abcd" not in left
    assert first["prefix"].split("/")[1] in left  # the previous export stays for its readers
    assert left == prefixes | {latest["prefix"].split("/")[1]}


def test_refuses_a_location_that_holds_other_data(
    server: S3Server, s3_env: dict[str, str], repo: Path
) -> None:
    fs = make_bucket(server, "other")
    with fs.open_output_stream("other/data/table.csv") as out:
        out.write(b"a,b\n")
    proc = subprocess.run(
        export_cmd(repo, "s3://other"), env=s3_env, capture_output=True, text=True
    )
    assert proc.returncode != 0
    assert "not an aim_parquet export" in proc.stderr and "Traceback" not in proc.stderr
    assert keys(fs, "other") == {"data/table.csv"}


def test_unreachable_endpoint_is_one_clear_error(s3_env: dict[str, str], repo: Path) -> None:
    env = {**s3_env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}  # discard port: nothing listens
    proc = subprocess.run(
        export_cmd(repo, "s3://nowhere/exp"), env=env, capture_output=True, text=True
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "export to s3://nowhere/exp failed" in proc.stderr


def test_any_fsspec_filesystem_is_a_target(repo: Path, tmp_path: Path) -> None:
    import fsspec

    report = export_dataset(RepoLayout(repo), "memory://exports-test/exp")
    mem = fsspec.filesystem("memory")
    ptr = json.loads(mem.cat_file(f"/exports-test/exp/{POINTER_FILENAME}"))
    assert report.output == "memory://exports-test/exp" and report.runs == 3
    got = {
        f["path"].removeprefix(ptr["prefix"] + "/"): rows(
            pq.read_table(mem.open(f"/exports-test/exp/{f['path']}", "rb"))
        )
        for f in ptr["files"]
    }
    assert got == local_export_metrics(repo, tmp_path / "local")


def local_export_metrics(repo: Path, out: Path) -> dict[str, list[dict[str, Any]]]:
    export_dataset(RepoLayout(repo), out)
    return {
        p.relative_to(out).as_posix(): rows(pq.read_table(p))
        for p in sorted(out.rglob("*.parquet"))
    }


def test_unknown_scheme_without_a_filesystem_is_a_clear_error(repo: Path) -> None:
    with pytest.raises(AimParquetError, match="no fsspec filesystem"):
        export_dataset(RepoLayout(repo), "nosuchscheme://bucket/exp")


def test_nan_survives_the_round_trip(server: S3Server, s3_env: dict[str, str], repo: Path) -> None:
    fs = make_bucket(server, "nans")
    export(repo, "s3://nans/exp", s3_env)
    seen = published_rows(fs, "nans/exp")
    values = [r["value"] for name, t in seen.items() if name.startswith("metrics/") for r in t]
    assert "nan" in values and math.inf in values  # rows() marks NaN as "nan"
    assert not any(isinstance(v, float) and math.isnan(v) for v in values)


def test_credentials_in_a_uri_are_never_printed(repo: Path) -> None:
    env = {
        **python_env(),
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_EC2_METADATA_DISABLED": "1",
    }
    uri = "s3://AKIDSECRETKEY:verysecret@nowhere/exp"
    proc = subprocess.run(export_cmd(repo, uri), env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and "s3://***@nowhere/exp" in proc.stderr
    assert "verysecret" not in proc.stderr and "AKIDSECRETKEY" not in proc.stderr
