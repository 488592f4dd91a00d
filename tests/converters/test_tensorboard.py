"""`aim-parquet convert tensorboard` on event files written by tensorboardX, by
torch.utils.tensorboard and by TensorBoard's own writer with TF2-style tensor summaries; every
converted point is compared with what TensorBoard's EventAccumulator reads from the same files.
A truncated file and one with a corrupt record are compared with the intact original."""

from __future__ import annotations

import math
import shutil
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aim_parquet.convert.tb_reader import EMPTY_TAG_NAME, KIND_KEY
from aim_parquet.convert.tensorboard import SUBSET_NAMES
from tests.convert_helpers import ConvertedRun, convert_cli, ctx_key, read_converted
from tests.converters.conftest import import_or_skip

# TensorBoard's own reader (requirements-converters.txt; `make test` runs without it)
ea = import_or_skip("tensorboard.backend.event_processing.event_accumulator")
plugin_data_pb2 = import_or_skip("tensorboard.plugins.hparams.plugin_data_pb2")
tensor_util = import_or_skip("tensorboard.util.tensor_util")

SIZE = {
    ea.SCALARS: 0,
    ea.HISTOGRAMS: 0,
    ea.IMAGES: 0,
    ea.AUDIO: 0,
    ea.TENSORS: 0,
    ea.COMPRESSED_HISTOGRAMS: 0,
}
WALL = 1_700_000_000.0


def _accumulator(folder: Path) -> Any:
    acc = ea.EventAccumulator(str(folder), size_guidance=SIZE)
    acc.Reload()
    return acc


def _where(logdir: Path, folder: Path) -> tuple[str, str | None]:
    """(run label, subset) of an event folder, by the documented rule."""
    if folder != logdir and folder.name.lower() in SUBSET_NAMES:
        run_dir, subset = folder.parent, folder.name
    else:
        run_dir, subset = folder, None
    rel = run_dir.relative_to(logdir)
    return (logdir.name if rel == Path(".") else rel.as_posix()), subset


def _same_number(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def _check_distribution(dist: Any, lefts: Any, rights: Any, counts: Any) -> None:
    lefts, rights, counts = (np.asarray(x, dtype=np.float64) for x in (lefts, rights, counts))
    widths = rights - lefts
    if len(counts) > 1 and np.allclose(widths, widths[0], rtol=1e-6):
        assert list(dist.weights) == list(counts)
        assert dist.range == [lefts[0], rights[-1]]
        return
    low, high = lefts.min(), rights.max()
    assert dist.range == [low, high]
    assert math.isclose(float(dist.weights.sum()), float(counts.sum()), rel_tol=1e-9)
    edges = np.linspace(low, high, dist.bin_count + 1)
    expected = np.zeros(dist.bin_count)
    for left, right, count in zip(lefts, rights, counts, strict=True):
        for j in range(dist.bin_count):
            if right > left:
                overlap = min(edges[j + 1], right) - max(edges[j], left)
                expected[j] += count * max(overlap, 0.0) / (right - left)
    np.testing.assert_allclose(dist.weights, expected, rtol=1e-9, atol=1e-9)


def _compare_folder(run: ConvertedRun, folder: Path, subset: str | None) -> set[tuple[str, str]]:
    """Every event EventAccumulator reads from `folder` is in `run`, equal and in the same order;
    the sequences seen. A sequence listed as renumbered holds TensorBoard's steps as epochs; a
    tag holding several kinds has the other kinds under the context key "kind"."""
    acc = _accumulator(folder)
    tags = acc.Tags()
    context = {"subset": subset} if subset else {}
    renumbered = {
        (r["name"], ctx_key(r["context"])) for r in run.params["tensorboard"].get("renumbered", [])
    }
    seen: set[tuple[str, str]] = set()

    def ours(tag: str, n: int, kind: str) -> tuple[list[int], list[Any], list[float]]:
        name = tag or EMPTY_TAG_NAME
        keys = [(name, ctx_key(context)), (name, ctx_key({**context, KIND_KEY: kind}))]
        key = next((k for k in keys if k in run.sequences and k not in seen), None)
        assert key is not None, (tag, kind, sorted(run.sequences))
        _, steps, values, epochs, times = run.sequences[key]
        assert len(steps) == n, tag
        if key in renumbered:
            assert steps == list(range(n))
            steps = epochs
        else:
            assert len(set(steps)) == n and min(steps, default=0) >= 0
        seen.add(key)
        return steps, values, times

    for tag in tags["scalars"]:
        events = acc.Scalars(tag)
        steps, values, times = ours(tag, len(events), "metric")
        assert steps == [e.step for e in events]
        assert times == [e.wall_time for e in events]
        assert all(_same_number(v, e.value) for v, e in zip(values, events, strict=True))
    for tag in tags["histograms"]:
        events = acc.Histograms(tag)
        steps, values, times = ours(tag, len(events), "distribution")
        assert steps == [e.step for e in events] and times == [e.wall_time for e in events]
        for dist, e in zip(values, events, strict=True):
            h = e.histogram_value
            lefts = [h.min, *h.bucket_limit[:-1]]
            rights = [*h.bucket_limit[:-1], h.max]
            _check_distribution(dist, lefts, rights, h.bucket)
    for tag in tags["images"]:
        events = acc.Images(tag)
        steps, values, times = ours(tag, len(events), "image")
        assert steps == [e.step for e in events] and times == [e.wall_time for e in events]
        for value, e in zip(values, events, strict=True):
            (image,) = value if isinstance(value, list) else [value]
            assert image.to_record().payload == e.encoded_image_string
            assert (image.width, image.height) == (e.width, e.height)
    for tag in tags["audio"]:
        events = acc.Audio(tag)
        steps, values, times = ours(tag, len(events), "audio")
        assert steps == [e.step for e in events] and times == [e.wall_time for e in events]
        for value, e in zip(values, events, strict=True):
            (audio,) = value if isinstance(value, list) else [value]
            assert audio.to_record().payload == e.encoded_audio_string
            assert audio.rate == round(e.sample_rate)
    for tag in tags["tensors"]:
        plugin = acc.SummaryMetadata(tag).plugin_data.plugin_name
        if plugin == "hparams":  # run["hparams"], compared in assert_same_as_tensorboard
            continue
        events = acc.Tensors(tag)
        kind = {"scalars": "metric", "histograms": "distribution", "images": "image"}
        steps, values, times = ours(tag, len(events), kind.get(plugin, plugin))
        assert steps == [e.step for e in events] and times == [e.wall_time for e in events]
        for value, e in zip(values, events, strict=True):
            array = tensor_util.make_ndarray(e.tensor_proto)
            items = value if isinstance(value, list) else [value]
            if plugin == "scalars":
                assert _same_number(value, array.item())
            elif plugin == "text":
                flat = [b.decode() for b in array.reshape(-1)]
                if array.ndim <= 1:
                    assert [str(i) for i in items] == flat
                else:  # a table: one Text, rows of tab-separated cells
                    assert str(value).replace("\n", "\t").split("\t") == flat
            elif plugin == "histograms":
                _check_distribution(value, array[:, 0], array[:, 1], array[:, 2])
            elif plugin == "images":
                assert [i.to_record().payload for i in items] == list(array[2:])
            elif plugin == "audio":
                assert [a.to_record().payload for a in items] == list(array.reshape(-1, 2)[:, 0])
                assert [a.caption for a in items] == [
                    b.decode() for b in array.reshape(-1, 2)[:, 1]
                ]
            else:
                raise AssertionError(f"unexpected plugin {plugin!r} for {tag}")
    return seen


def _hparams(folder: Path) -> dict[str, Any] | None:
    try:
        content = _accumulator(folder).PluginTagToContent("hparams")
    except KeyError:  # no hparams summary in this folder
        return None
    start = content.get("_hparams_/session_start_info")
    if start is None:
        return None
    data = plugin_data_pb2.HParamsPluginData.FromString(start)
    return {
        key: getattr(value, value.WhichOneof("kind"))
        for key, value in data.session_start_info.hparams.items()
    }


def assert_same_as_tensorboard(logdir: Path, dest: Path) -> dict[str, ConvertedRun]:
    runs = read_converted(dest)
    seen: dict[str, set[tuple[str, str]]] = {}
    folders = sorted({p.parent for p in logdir.rglob("*tfevents*")})
    for folder in folders:
        label, subset = _where(logdir, folder)
        run = runs[label]
        seen.setdefault(label, set()).update(_compare_folder(run, folder, subset))
        hparams = _hparams(folder)
        if hparams is not None:
            assert run.params["hparams"] == hparams
    for label, run in runs.items():
        assert set(run.sequences) == seen[label], label  # nothing missing, nothing extra
        times = [t for seq in run.sequences.values() for t in seq[4]]
        if times:
            assert run.creation_time <= min(times) and run.end_time >= max(times)
    assert set(runs) == set(seen)
    return runs


def _convert(logdir: Path, dest: Path, code: int = 0) -> str:
    result = convert_cli("tensorboard", str(logdir), "--repo", str(dest))
    assert result.returncode == code, result.stdout + result.stderr
    return result.stdout


def test_tensorboardx_every_kind(tmp_path: Path) -> None:
    from tensorboardX import SummaryWriter

    rng = np.random.default_rng(0)
    logdir = tmp_path / "logs"
    for subset in ("train", "validation"):
        w = SummaryWriter(str(logdir / "exp" / subset))
        for step in range(40):
            w.add_scalar("loss", float(rng.random()), step, walltime=WALL + step * 1.5)
        w.add_scalar("special", float("nan"), 40)
        w.add_scalar("special", float("inf"), 41)
        w.add_histogram("weights", rng.normal(size=500), 0)  # TensorFlow's exponential buckets
        w.add_histogram("uniform", rng.normal(size=500), 1, bins=20)
        w.add_image("img", rng.random((3, 6, 5)), 2)
        w.add_images("batch", rng.random((2, 3, 4, 4)), 3)
        w.add_text("notes", f"**hello** {subset}", 4)
        w.close()
    w = SummaryWriter(str(logdir / "sweep"))
    w.add_scalar("x", 1.0, 0)
    w.add_hparams(
        {"lr": 0.01, "opt": "adam", "wd": True, "layers": 3}, {"hp/acc": 0.75}, name="trial"
    )
    w.close()
    _convert(logdir, tmp_path / "d")
    runs = assert_same_as_tensorboard(logdir, tmp_path / "d")
    assert sorted(runs) == ["exp", "sweep", "sweep/trial"]
    assert runs["sweep/trial"].params["hparams"] == {
        "lr": 0.01,
        "opt": "adam",
        "wd": True,
        "layers": 3.0,
    }
    assert runs["exp"].experiment == "logs"


def test_torch_utils_tensorboard(tmp_path: Path) -> None:
    import_or_skip("torch")
    from torch.utils.tensorboard import SummaryWriter

    rng = np.random.default_rng(1)
    logdir = tmp_path / "logs"
    w = SummaryWriter(str(logdir / "run"))
    for step in range(25):
        w.add_scalar("loss", float(rng.random()), step)
        w.add_scalar("acc", float(rng.random()), step, new_style=True)  # a tensor scalar
    w.add_histogram("h", rng.normal(size=300), 5)
    w.add_histogram("h", rng.normal(size=300), 6)
    w.add_image("im", rng.random((3, 8, 8)), 5)
    w.add_text("t", "torch *text*", 5)
    w.add_audio("snd", np.sin(np.linspace(0, 200, 8000)).astype(np.float32), 5, sample_rate=8000)
    w.add_hparams({"lr": 0.1, "bs": 32, "name": "x"}, {"hp/loss": 0.5}, run_name="hp")
    w.close()
    _convert(logdir, tmp_path / "d")
    runs = assert_same_as_tensorboard(logdir, tmp_path / "d")
    assert sorted(runs) == ["run", "run/hp"]
    assert runs["run/hp"].params["hparams"] == {"lr": 0.1, "bs": 32.0, "name": "x"}


def test_tf2_tensor_summaries(tmp_path: Path) -> None:
    """What TF2's tf.summary writes (tensors with plugin metadata on a tag's first value only),
    built with TensorBoard's own protos and written by its EventFileWriter."""
    from PIL import Image as PILImage
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    def value(tag: str, array: Any, plugin: str | None) -> Any:
        v = summary_pb2.Summary.Value(tag=tag, tensor=tensor_util.make_tensor_proto(array))
        if plugin is not None:
            v.metadata.plugin_data.plugin_name = plugin
        return v

    png = []
    for shade in (10, 200):
        buffer = __import__("io").BytesIO()
        PILImage.new("RGB", (5, 3), (shade, 0, 0)).save(buffer, format="PNG")
        png.append(buffer.getvalue())
    wav = tmp_path / "x.wav"
    import wave

    with wave.open(str(wav), "wb") as fh:
        fh.setnchannels(1)
        fh.setsampwidth(2)
        fh.setframerate(16000)
        fh.writeframes(struct.pack("<100h", *range(100)))
    logdir = tmp_path / "logs"
    writer = EventFileWriter(str(logdir / "tf2"))
    for step in range(6):
        first = step == 0
        values = [
            value("loss", np.float32(1.0 / (step + 1)), "scalars" if first else None),
            value("count", np.int64(step), "scalars" if first else None),
            value(
                "hist",
                np.array([[0.0, 1.0, step], [1.0, 2.0, 3.0], [2.0, 3.0, 1.0]]),
                "histograms" if first else None,
            ),
            value(
                "note", np.array(f"step {step}".encode(), dtype=object), "text" if first else None
            ),
        ]
        if step == 2:
            values.append(value("pics", np.array([b"5", b"3", *png], dtype=object), "images"))
            values.append(
                value("sound", np.array([[wav.read_bytes(), b"a label"]], dtype=object), "audio")
            )
        event = event_pb2.Event(
            wall_time=WALL + step, step=step, summary=summary_pb2.Summary(value=values)
        )
        writer.add_event(event)
    writer.close()
    _convert(logdir, tmp_path / "d")
    runs = assert_same_as_tensorboard(logdir, tmp_path / "d")
    _, steps, values, _, _ = runs["tf2"].sequences[("count", ctx_key({}))]
    assert values == list(range(6)) and all(type(v) is int for v in values)


def _record_offsets(data: bytes) -> list[int]:
    offsets, pos = [], 0
    while pos + 12 <= len(data):
        offsets.append(pos)
        pos += 12 + struct.unpack_from("<Q", data, pos)[0] + 4
    return offsets


@pytest.mark.parametrize("damage", ["corrupt data", "corrupt length", "truncated"])
def test_damaged_file_keeps_every_intact_record(tmp_path: Path, damage: str) -> None:
    from tensorboardX import SummaryWriter

    original = tmp_path / "original"
    w = SummaryWriter(str(original / "run"))
    for step in range(60):
        w.add_scalar("loss", step * 0.5, step, walltime=WALL + step)
    w.close()
    expected = [
        (e.step, e.value, e.wall_time) for e in _accumulator(original / "run").Scalars("loss")
    ]
    assert len(expected) == 60
    damaged = tmp_path / "damaged"
    shutil.copytree(original, damaged)
    (path,) = (damaged / "run").iterdir()
    data = bytearray(path.read_bytes())
    offsets = _record_offsets(bytes(data))
    lost = 30  # record 0 is the file version, record k + 1 holds step k
    if damage == "corrupt data":
        data[offsets[lost + 1] + 14] ^= 0x40
        path.write_bytes(bytes(data))
    elif damage == "corrupt length":
        data[offsets[lost + 1] + 2] ^= 0x01
        path.write_bytes(bytes(data))
    else:
        lost = 59
        path.write_bytes(bytes(data[: offsets[-1] + 20]))
    out = _convert(damaged, tmp_path / "d", code=1)
    reason = {"corrupt data": "wrong CRC", "corrupt length": "corrupt record header"}.get(
        damage, "ends inside a record"
    )
    assert reason in out and "skipped" in out
    run = read_converted(tmp_path / "d")["run"]
    _, steps, values, _, times = run.sequences[("loss", ctx_key({}))]
    kept = [p for p in expected if p[0] != lost]
    assert list(zip(steps, values, times, strict=True)) == kept
    if damage == "truncated":  # TensorBoard's own reader agrees on a torn end
        got = [
            (e.step, e.value, e.wall_time) for e in _accumulator(damaged / "run").Scalars("loss")
        ]
        assert got == kept


def test_repeated_steps_restarts_and_a_tag_of_several_kinds_lose_nothing(tmp_path: Path) -> None:
    """What months of real logs hold: values logged without `global_step` (all at step 0), a
    run restarted from a checkpoint that logs steps 50..149 again after 0..99, negative steps, one
    tag used for a scalar, a histogram and an image, an empty tag and odd names. TensorBoard
    keeps every event; so must the conversion, in TensorBoard's order."""
    import_or_skip("torch")
    from tensorboardX import SummaryWriter as XWriter
    from torch.utils.tensorboard import SummaryWriter

    rng = np.random.default_rng(3)
    logdir = tmp_path / "logs"
    w = SummaryWriter(str(logdir / "nostep"))
    for i in range(20):
        w.add_scalar("loss", float(i), walltime=WALL + i)
        w.add_image("sample", rng.random((3, 4, 4 + i % 3)), walltime=WALL + i)
        w.add_histogram("w", rng.normal(size=50) + i, walltime=WALL + i)
    w.close()
    for part, steps in (("a", range(0, 100)), ("b", range(50, 150))):
        w = SummaryWriter(str(logdir / "restart" / "train"), filename_suffix=f".{part}")
        for s in steps:
            w.add_scalar("loss", float(s) + (1000.0 if part == "b" else 0.0), s, walltime=WALL + s)
            if s % 25 == 0:
                w.add_histogram("grad", rng.normal(size=40), s, walltime=WALL + s)
        w.close()
    w = SummaryWriter(str(logdir / "mixed"))
    for s in range(4):
        w.add_scalar("weights", float(s), s)
        w.add_histogram("weights", rng.normal(size=30), s)
        w.add_image("weights", rng.random((3, 5, 5)), s)
    for name in ["", "a/b/c", "ü/λ/日本語", "x" * 300, "tab\there", "__system__cpu", "a.b"]:
        w.add_scalar(name, 1.5, 0)
    w.close()
    x = XWriter(str(logdir / "negative"))
    for s in (-5, -1, 0, 2**40, 2**62):
        x.add_scalar("v", float(s % 7), s)
    x.close()
    out = _convert(logdir, tmp_path / "d")
    assert "skipped" not in out and "partial" not in out
    runs = assert_same_as_tensorboard(logdir, tmp_path / "d")
    renumbered = {
        label: sorted(
            (r["name"], ctx_key(r["context"]))
            for r in run.params["tensorboard"].get("renumbered", [])
        )
        for label, run in runs.items()
    }
    assert renumbered == {
        "nostep": [("loss", "{}"), ("sample", "{}"), ("w", "{}")],
        "restart": [("grad", ctx_key({"subset": "train"})), ("loss", ctx_key({"subset": "train"}))],
        "mixed": [],
        "negative": [("v", "{}")],
    }
    mixed = runs["mixed"]
    assert mixed.sequences[("weights", "{}")][0] == "float"
    assert ("weights", ctx_key({"kind": "distribution"})) in mixed.sequences
    assert ("weights", ctx_key({"kind": "image"})) in mixed.sequences
    assert (EMPTY_TAG_NAME, "{}") in mixed.sequences
    again = convert_cli("tensorboard", str(logdir), "--repo", str(tmp_path / "d"))
    assert again.returncode == 0 and "source runs: 4 up to date" in again.stdout, again.stdout


def test_tf2_batches_of_changing_size_and_hparams_plugin_api(tmp_path: Path) -> None:
    """tf.summary.image / text with batches of 3, 1 and 2 items (a step with one item is a list
    of one, not a value the sequence refuses), and hparams written through TensorBoard's own
    hparams API."""
    from PIL import Image as PILImage
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.plugins.hparams import summary_v2 as hp
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    png = []
    for shade in range(3):
        buffer = __import__("io").BytesIO()
        PILImage.new("L", (3, 2), shade * 60).save(buffer, format="PNG")
        png.append(buffer.getvalue())

    def event(step: int, tag: str, array: Any, plugin: str) -> Any:
        v = summary_pb2.Summary.Value(tag=tag, tensor=tensor_util.make_tensor_proto(array))
        v.metadata.plugin_data.plugin_name = plugin
        return event_pb2.Event(
            wall_time=WALL + step, step=step, summary=summary_pb2.Summary(value=[v])
        )

    logdir = tmp_path / "logs"
    writer = EventFileWriter(str(logdir / "tf2"))
    for step, n in enumerate([3, 1, 2]):
        writer.add_event(
            event(step, "pics", np.array([b"3", b"2", *png[:n]], dtype=object), "images")
        )
        lines = np.array([f"line {i}".encode() for i in range(n)], dtype=object)
        writer.add_event(event(step, "notes", lines, "text"))
    writer.add_event(
        event_pb2.Event(
            wall_time=WALL,
            summary=hp.hparams_pb(
                {hp.HParam("lr"): 0.01, hp.HParam("opt"): "adam", "units": 16, "drop": True},
                trial_id="trial 0",
            ),
        )
    )
    writer.close()
    out = _convert(logdir, tmp_path / "d")
    assert "skipped" not in out
    runs = assert_same_as_tensorboard(logdir, tmp_path / "d")
    run = runs["tf2"]
    assert [len(v) for v in run.sequences[("pics", "{}")][2]] == [3, 1, 2]
    assert [len(v) for v in run.sequences[("notes", "{}")][2]] == [3, 1, 2]
    assert run.params["hparams"] == {"lr": 0.01, "opt": "adam", "units": 16.0, "drop": True}
    assert run.params["tensorboard"]["hparams_group"] == "trial 0"


def test_linked_run_folders_are_followed_once(tmp_path: Path) -> None:
    from tensorboardX import SummaryWriter

    elsewhere = tmp_path / "elsewhere" / "exp7"
    w = SummaryWriter(str(elsewhere))
    for s in range(5):
        w.add_scalar("acc", s / 10, s, walltime=WALL + s)
    w.close()
    logdir = tmp_path / "logs"
    (logdir / "runs").mkdir(parents=True)
    (logdir / "runs" / "best").symlink_to(elsewhere, target_is_directory=True)
    (logdir / "runs" / "again").symlink_to(elsewhere, target_is_directory=True)
    (logdir / "runs" / "loop").symlink_to(logdir, target_is_directory=True)
    _convert(logdir, tmp_path / "d")
    runs = read_converted(tmp_path / "d")
    assert sorted(runs) == ["runs/again"]  # "best" is the same folder, "loop" leads back
    seen = _compare_folder(runs["runs/again"], logdir / "runs" / "again", None)
    assert seen == {("acc", "{}")}
