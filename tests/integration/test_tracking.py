"""The Run write API against real files, checked with plain pyarrow/json (independent readers)."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import aim_parquet as aim
from tests.conftest import raw_points, sidecar


def test_new_run_creates_repo_and_visible_sidecar(repo_root: Path, make_run: Any) -> None:
    run = make_run(experiment="exp1")
    assert len(run.hash) == 24 and all(c in "0123456789abcdef" for c in run.hash)
    data = sidecar(repo_root, run.hash)
    assert data["hash"] == run.hash
    assert data["experiment"] == "exp1"
    assert data["end_time"] is None
    assert data["format_version"] == 1
    assert run.name == f"Run: {run.hash}"
    assert run.active is True
    assert run.experiment == "exp1"


def test_repo_path_with_trailing_dot_aim_and_tilde(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    with aim.Run(
        repo="~/proj/.aim", system_tracking_interval=None, capture_terminal_logs=False
    ) as run:
        pass
    assert (tmp_path / "proj" / ".aim" / "runs" / run.hash / "run.json").is_file()


def test_default_repo_is_nearest_dot_aim_upward(tmp_path: Path, monkeypatch: Any) -> None:
    (tmp_path / ".aim").mkdir()
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    with aim.Run(system_tracking_interval=None, capture_terminal_logs=False) as run:
        pass
    assert (tmp_path / ".aim" / "runs" / run.hash).is_dir()
    assert not (deep / ".aim").exists()


def test_params_round_trip(repo_root: Path, make_run: Any) -> None:
    run = make_run()
    run["hparams"] = {"learning_rate": 0.0001, "batch_size": 32}
    run["hparams", "nested"] = {"a": [1, 2, (3, 4)], "nan": float("nan"), "inf": -math.inf}
    run["blob"] = b"\x00\x01"
    run["np"] = np.float32(0.5)
    run["zero_d"] = np.array(7)
    run["none"] = None
    assert run["hparams"]["learning_rate"] == 0.0001
    assert run["hparams", "batch_size"] == 32
    assert run["hparams", "nested", "a"] == [1, 2, [3, 4]]
    assert math.isnan(run["hparams", "nested", "nan"])
    assert run["blob"] == b"\x00\x01"
    assert run["np"] == 0.5 and type(run["np"]) is float
    assert run["zero_d"] == 7 and type(run["zero_d"]) is int
    assert run[...]["none"] is None
    assert run.get("missing", "dflt") == "dflt"
    with pytest.raises(KeyError):
        run["missing"]
    del run["blob"]
    assert "blob" not in run[...]
    # persisted immediately, readable by any JSON reader (no NaN tokens)
    text = (repo_root / ".aim" / "runs" / run.hash / "run.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    reopened = aim.Run(run.hash, repo=repo_root, read_only=True)
    assert reopened["hparams", "learning_rate"] == 0.0001


def test_param_type_errors_name_key_and_type(make_run: Any) -> None:
    run = make_run()
    with pytest.raises(TypeError, match=r"'bad'.*object"):
        run["bad"] = object()
    with pytest.raises(TypeError, match="str keys"):
        run["d"] = {1: "x"}
    run.set("lenient", object(), strict=False)
    assert run["lenient"].startswith("<object object")


def test_track_metrics_steps_epochs_contexts(repo_root: Path, make_run: Any) -> None:
    run = make_run()
    for step in range(10):
        run.track(step * 10, name="loss", step=step, epoch=0, context={"subset": "train"})
    run.track(1.5, name="acc")
    run.track(2.5, name="acc")
    run.track(np.float64(3.5), name="acc")
    run.track({"a": 1, "b": 2.0}, step=5)
    run.close()
    points = raw_points(repo_root, run.hash)
    loss = points[("loss", '{"subset":"train"}')]
    assert [p["step"] for p in loss] == list(range(10))
    assert [p["value"] for p in loss] == [s * 10 for s in range(10)]
    assert {p["epoch"] for p in loss} == {0}
    acc = points[("acc", "{}")]
    assert [(p["step"], p["value"]) for p in acc] == [(0, 1.5), (1, 2.5), (2, 3.5)]
    assert all(p["epoch"] is None for p in acc)
    assert points[("a", "{}")][0]["step"] == 5
    assert points[("b", "{}")][0]["value"] == 2.0
    cat = {s["name"]: s for s in sidecar(repo_root, run.hash)["sequences"]}
    assert (
        cat["loss"]["kind"] == "int" and cat["loss"]["last"] == 90 and cat["loss"]["last_step"] == 9
    )
    assert cat["acc"]["min"] == 1.5 and cat["acc"]["max"] == 3.5 and cat["acc"]["count"] == 3
    assert cat["b"]["kind"] == "float"


def test_context_is_order_independent(repo_root: Path, make_run: Any) -> None:
    run = make_run()
    run.track(1.0, name="m", context={"a": 1, "b": "x"})
    run.track(2.0, name="m", context={"b": "x", "a": 1})
    run.track(3.0, name="m", context={"nested": {"k": [1, 2]}})
    run.close()
    points = raw_points(repo_root, run.hash)
    assert [p["step"] for p in points[("m", '{"a":1,"b":"x"}')]] == [0, 1]
    assert len(points[("m", '{"nested":{"k":[1,2]}}')]) == 1


def test_auto_step_is_max_plus_one_with_out_of_order_and_repeats(
    repo_root: Path, make_run: Any
) -> None:
    run = make_run()
    run.track(1.0, name="m", step=5)
    run.track(2.0, name="m", step=2)
    run.track(3.0, name="m")  # max(5)+1
    run.track(4.0, name="m", step=2)  # repeat
    run.close()
    steps = [p["step"] for p in raw_points(repo_root, run.hash)[("m", "{}")]]
    assert steps == [5, 2, 6, 2]


def test_int_and_float_mix_but_other_kinds_do_not(make_run: Any) -> None:
    run = make_run()
    run.track(1, name="m")
    run.track(1.5, name="m")
    run.track(aim.Text("hello"), name="t")
    with pytest.raises(
        ValueError, match=r"Cannot log value 'hello' on sequence 'm'\. Incompatible"
    ):
        run.track(aim.Text("hello"), name="m")
    with pytest.raises(ValueError, match="Incompatible data types"):
        run.track(1.0, name="t")


def test_kind_mismatch_detected_after_resume(repo_root: Path, make_run: Any) -> None:
    run = make_run()
    run.track(1.0, name="m")
    run.close()
    resumed = make_run(run_hash=run.hash)
    with pytest.raises(ValueError, match="Incompatible data types"):
        resumed.track(aim.Text("x"), name="m")


@pytest.mark.parametrize(
    ("value", "kwargs", "error", "match"),
    [
        ("str", {"name": "m"}, ValueError, "neither python number nor AimObject"),
        (np.ones(3), {"name": "m"}, ValueError, "neither python number"),
        (1.0, {}, ValueError, "non-empty str name"),
        (1.0, {"name": ""}, ValueError, "non-empty str name"),
        ({"a": 1}, {"name": "x"}, ValueError, "name must be None"),
        (1.0, {"name": "m", "step": -1}, ValueError, "between 0 and 2\\*\\*63-1"),
        (1.0, {"name": "m", "step": 2**63}, ValueError, "between 0"),
        (1.0, {"name": "m", "step": 1.5}, ValueError, "step must be an int"),
        (1.0, {"name": "m", "epoch": "x"}, ValueError, "epoch"),
        (1.0, {"name": "m", "context": "train"}, TypeError, "context must be a dict"),
        (1.0, {"name": "m", "context": {1: "a"}}, TypeError, "str keys"),
        (1.0, {"name": "m", "context": {"a": object()}}, TypeError, "not supported"),
    ],
)
def test_bad_track_input_is_a_clear_error_and_corrupts_nothing(
    repo_root: Path, make_run: Any, value: Any, kwargs: dict[str, Any], error: type, match: str
) -> None:
    run = make_run()
    run.track(1.0, name="m")
    with pytest.raises(error, match=match):
        run.track(value, **kwargs)
    run.track(2.0, name="m")
    run.close()
    assert [p["value"] for p in raw_points(repo_root, run.hash)[("m", "{}")]] == [1.0, 2.0]


def test_numpy_scalars_size1_arrays_and_item_objects(repo_root: Path, make_run: Any) -> None:
    class FakeTensor:
        def item(self) -> float:
            return 0.25

    run = make_run()
    run.track(np.int64(3), name="m")
    run.track(np.array([4.5]), name="m")
    run.track(FakeTensor(), name="m")
    run.track(True, name="flag")
    run.close()
    assert [p["value"] for p in raw_points(repo_root, run.hash)[("m", "{}")]] == [3.0, 4.5, 0.25]
    assert raw_points(repo_root, run.hash)[("flag", "{}")][0]["value"] == 1.0


def test_nan_inf_and_huge_values_are_kept(repo_root: Path, make_run: Any) -> None:
    run = make_run()
    for v in (float("nan"), math.inf, -math.inf, 10**400, 2**62):
        run.track(v, name="m")
    run.close()
    vals = [p["value"] for p in raw_points(repo_root, run.hash)[("m", "{}")]]
    assert math.isnan(vals[0]) and vals[1:4] == [math.inf, -math.inf, math.inf]
    assert vals[4] == float(2**62)


def test_properties_persist_immediately(repo_root: Path, make_run: Any) -> None:
    run = make_run()
    run.name = "my run"
    run.description = "desc"
    run.experiment = "exp2"
    run.add_tag("v1")
    run.add_tag("v1")
    run.add_tag("best")
    assert run.remove_tag("best") is True and run.remove_tag("nope") is False
    run.archived = True
    data = sidecar(repo_root, run.hash)
    assert (data["name"], data["description"], data["experiment"]) == ("my run", "desc", "exp2")
    assert data["tags"] == ["v1"] and data["archived"] is True
    assert run.created_at.year >= 2024 and run.end_time is None and run.duration >= 0


def test_close_sets_end_time_and_releases_lock(
    repo_root: Path, make_run: Any, caplog: pytest.LogCaptureFixture
) -> None:
    run = make_run()
    run.track(1.0, name="m")
    run.close()
    run.close()  # idempotent
    assert run.active is False and run.end_time is not None
    assert sidecar(repo_root, run.hash)["end_time"] == run.end_time
    # after close(): track() drops the point with one warning (as Aim ignores it); params raise
    with caplog.at_level(logging.WARNING, logger="aim_parquet"):
        run.track(2.0, name="m")
        run.track({"m": 3.0, "n": 4.0})
        run.track(5.0, name="new", context={"c": "x"})
    warnings = [r for r in caplog.records if "after close() is dropped" in r.getMessage()]
    assert len(warnings) == 1 and run.hash in warnings[0].getMessage()
    assert run._retired.late_points == 4
    with pytest.raises(aim.RunClosedError):
        run["p"] = 1
    run.flush()  # nothing left to write: a no-op
    assert [p["value"] for p in raw_points(repo_root, run.hash)[("m", "{}")]] == [1.0]
    again = make_run(run_hash=run.hash)  # lock is free
    assert again.active


def test_resume_continues_steps_in_new_segments(repo_root: Path, make_run: Any) -> None:
    run = make_run()
    for _ in range(3):
        run.track(1.0, name="m", context={"c": 1})
    run.close()
    seq_dir = next((repo_root / ".aim" / "runs" / run.hash / "seqs").iterdir())
    before = {p.name: p.read_bytes() for p in seq_dir.iterdir()}
    resumed = make_run(run_hash=run.hash)
    assert resumed.end_time is None and resumed.active
    resumed.track(2.0, name="m", context={"c": 1})
    resumed.close()
    after = {p.name: p.read_bytes() for p in seq_dir.iterdir()}
    assert all(after[name] == data for name, data in before.items())  # never rewritten
    assert len(after) == len(before) + 1
    points = raw_points(repo_root, run.hash)[("m", '{"c":1}')]
    assert [p["step"] for p in points] == [0, 1, 2, 3]


def test_unknown_and_malformed_hashes(repo_root: Path, make_run: Any) -> None:
    with pytest.raises(aim.MissingRunError, match="No run"):
        make_run(run_hash="0" * 24)
    for bad in ("../../etc/passwd", "a" * 23, "A" * 24, "abc/def" + "0" * 17, "0" * 23 + "\x00"):
        with pytest.raises(aim.InvalidRunHashError):
            make_run(run_hash=bad)
    assert not (repo_root.parent / "etc").exists()


def test_read_only_run_refuses_writes(repo_root: Path, make_run: Any) -> None:
    run = make_run()
    run["p"] = 1
    ro = aim.Run(run.hash, repo=repo_root, read_only=True)
    assert ro["p"] == 1
    with pytest.raises(aim.ReadOnlyRunError):
        ro.track(1.0, name="m")
    with pytest.raises(aim.ReadOnlyRunError):
        ro["p"] = 2
    with pytest.raises(ValueError, match="run_hash"):
        aim.Run(repo=repo_root, read_only=True)


def test_several_runs_in_one_process(repo_root: Path, make_run: Any) -> None:
    a, b = make_run(), make_run()
    a.track(1.0, name="m")
    b.track(2.0, name="m")
    a.close()
    b.close()
    assert raw_points(repo_root, a.hash)[("m", "{}")][0]["value"] == 1.0
    assert raw_points(repo_root, b.hash)[("m", "{}")][0]["value"] == 2.0


def test_objects_are_tracked_as_their_own_kinds(repo_root: Path, make_run: Any) -> None:
    run = make_run()
    img = np.zeros((4, 5, 3), dtype=np.uint8)
    run.track(aim.Image(img, "cap"), name="img", step=0)
    run.track([aim.Image(img, "a"), aim.Image(img, "b")], name="imgs", step=3)
    run.track(aim.Distribution(np.arange(100)), name="dist")
    run.track(aim.Text("t"), name="txt")
    run.close()
    cat = {s["name"]: s["kind"] for s in sidecar(repo_root, run.hash)["sequences"]}
    assert cat == {
        "img": "aim.image",
        "imgs": "list(aim.image)",
        "dist": "aim.distribution",
        "txt": "aim.text",
    }
    rows = raw_points(repo_root, run.hash)[("imgs", "{}")]
    assert [(r["step"], r["index"]) for r in rows] == [(3, 0), (3, 1)]
    assert rows[0]["payload"][:8] == b"\x89PNG\r\n\x1a\n"


def test_threads_tracking_one_sequence_keep_each_point_whole(
    repo_root: Path, make_run: Any
) -> None:
    """Several threads on the same sequence while the flusher runs: every point keeps its own
    step, value and epoch together (a point is one atomic buffer append)."""
    import threading

    run = make_run()
    run._writer.max_buffer_points = 1000  # frequent flushes racing with the appends
    for seq in run._writer.seqs.values():
        seq.flush_at = 1000 * seq.stride

    def worker(offset: int) -> None:
        for i in range(20_000):
            step = offset + i * 4
            run.track(float(step), name="m", step=step, epoch=step, context={"k": "v"})

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run.close()
    points = raw_points(repo_root, run.hash)[("m", '{"k":"v"}')]
    assert len(points) == 80_000
    assert all(p["value"] == p["step"] == p["epoch"] for p in points)
    assert sorted(p["step"] for p in points) == list(range(80_000))
