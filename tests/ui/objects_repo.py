"""A repository with every kind of object and the awkward cases the pages must survive: runs with
and without params, NaN and inf, non-ASCII names, an image Pillow cannot decode, a sequence with
a damaged segment, and a run whose sidecar is damaged."""

from __future__ import annotations

import io
import json
import math
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout, segment_name, sequence_id
from aim_parquet.objects import LogLine
from tests.ui.conftest import quiet_run

IMAGE_STEPS = (0, 10, 20)
IMAGES_PER_STEP = 6


@dataclass
class ObjectsRepo:
    root: Path
    vision: str  # every kind of object, params, NaN/inf, non-ASCII names
    plain: str  # no params; an RGBA, a tiny and an undecodable image; a text with no words
    damaged_segment: str  # one metric sequence with a garbage segment
    damaged_sidecar: str  # a run whose run.json is garbage


def picture(seed: int, size: int = 64, alpha: bool = False) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size]
    r = (np.sin(x / (3 + seed)) * 127 + 128).astype(np.uint8)
    g = ((x + y + seed * 20) % 256).astype(np.uint8)
    b = np.full_like(r, (seed * 40) % 256)
    planes = [r, g, b] + ([((x * 4) % 256).astype(np.uint8)] if alpha else [])
    return np.stack(planes, axis=-1)


def wav_bytes(freq: float, seconds: float = 0.3, rate: int = 8000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    samples = (np.sin(2 * np.pi * freq * t) * 12000).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return out.getvalue()


class PlotlyLike:
    """A Plotly figure as `aim.Figure` reads one (duck typed: `to_json`, `to_plotly_json`), so
    the repository is made without plotly installed."""

    def __init__(self, k: int) -> None:
        xs = list(range(20))
        self.figure = {
            "data": [{"type": "scatter", "x": xs, "y": [math.sin(x / (2 + k)) for x in xs],
                      "name": f"sin k={k}"}],
            "layout": {"title": {"text": f"figure {k} · ünï"}},
        }  # fmt: skip

    def to_plotly_json(self) -> dict[str, object]:
        return self.figure

    def to_json(self) -> str:
        return json.dumps(self.figure)


def make_objects_repo(root: Path) -> ObjectsRepo:
    rng = np.random.default_rng(7)
    run = quiet_run(root, experiment="vision ☀")
    run.name = "vision ünïcode 視覚"
    run["hparams"] = {"lr": 0.01, "arch": "résnet", "layers": [64, 128], "nan": float("nan")}
    run.description = "every kind of object"
    for step in range(200):
        value = math.exp(-step / 60)
        if step in (50, 51):
            value = float("nan") if step == 50 else float("inf")
        run.track(value, name="loss", step=step, context={"subset": "train"})
        if step % 20 == 0:
            run.track(0.3 + step / 400, name="accuracy", step=step, context={"subset": "val"})
            run.track(20 + step % 7, name="__system__cpu", step=step // 20)
            run.track(50.0, name="__system__gpu_util", step=step // 20, context={"gpu": 0})
    for step in IMAGE_STEPS:
        batch = [
            aim.Image(picture(step + i), caption=f"sample {i} · 画像")
            for i in range(IMAGES_PER_STEP)
        ]
        run.track(batch, name="samples", step=step, context={"subset": "train"})
        run.track(aim.Image(picture(step, 128)), name="reconstruction", step=step)
    for step in range(0, 50, 2):
        samples = rng.normal(step / 25, 1 + step / 50, 2000)
        run.track(aim.Distribution(samples, bin_count=48), name="weights", step=step)
    run.track(aim.Distribution(np.zeros(10)), name="constant", step=0)
    for step in range(12):
        run.track(aim.Text(f"prediction {step}: «{'ünï' * (step % 3)}» label={step % 4}"),
                  name="predictions", step=step)  # fmt: skip
    for step in (0, 5):
        run.track(aim.Audio(wav_bytes(220 * (1 + step / 5)), format="wav", caption=f"tone {step}"),
                  name="clips", step=step)  # fmt: skip
    for step in (0, 1):
        run.track(aim.Figure(PlotlyLike(step)), name="curves", step=step)
    for line in range(300):
        text = f"epoch {line // 100} batch {line} loss={math.exp(-line / 100):.4f}"
        if line == 7:
            text = "\x1b[32mgreen text\x1b[0m 緑"
        run.track(LogLine(text), name="logs", step=line)
    run.log_info("training started", lr=0.01)
    run.log_warning("loss is NaN at step 50")
    run.log_error("could not save checkpoint: disk full ✗")
    run.close()
    vision = run.hash

    run = quiet_run(root, experiment="plain")
    for step in range(5):
        run.track(float(step), name="loss", step=step, context={"subset": "train"})
    run.track(aim.Image(picture(3, 48, alpha=True), caption="with alpha"), name="samples",
              step=20, context={"subset": "train"})  # fmt: skip
    run.track(aim.Image(picture(1, 8)), name="tiny", step=0)
    broken = aim.Image.from_record(b"not an image at all", {"format": "png", "width": 9,
                                                            "height": 9, "mode": "RGB"})  # fmt: skip
    run.track(broken, name="broken", step=0)
    run.track(aim.Text(""), name="predictions", step=0)
    run.close()
    plain = run.hash

    run = quiet_run(root, experiment="damaged")
    run.name = "damaged segment run"
    for step in range(30):
        run.track(float(step), name="loss", step=step, context={"subset": "train"})
        run.track(float(-step), name="good", step=step)
    run.close()
    damaged_segment = run.hash
    layout = RepoLayout(root)
    seq_dir = layout.seq_dir(damaged_segment, sequence_id("loss", {"subset": "train"}))
    (seq_dir / segment_name(2**62, 1)).write_bytes(b"garbage, not an Arrow stream" * 10)

    run = quiet_run(root, experiment="damaged")
    run.track(1.0, name="loss", step=0)
    run.close()
    damaged_sidecar = run.hash
    layout.sidecar(damaged_sidecar).write_bytes(b"{ this is not json")
    return ObjectsRepo(root, vision, plain, damaged_segment, damaged_sidecar)


EMPTY_SEQUENCES = [("pics", "list(aim.image)"), ("hist", "aim.distribution"), ("notes", "aim.text"),
                   ("clips", "aim.audio"), ("figs", "aim.figure")]  # fmt: skip


def make_empty_sequences_run(root: Path) -> str:
    """A finished run whose catalogue names one sequence of each object kind that holds no point
    yet (as a writer that created them and died before its first flush leaves them)."""
    from aim_parquet.format.paths import sequence_id

    run = quiet_run(root)
    run.track(1.0, name="loss", step=0)
    run.close()
    path = RepoLayout(root).sidecar(run.hash)
    meta = json.loads(path.read_text())
    for name, kind in EMPTY_SEQUENCES:
        meta["sequences"].append(
            {"seq_id": sequence_id(name, {}), "name": name, "context": {}, "kind": kind, "count": 0}
        )
    path.write_text(json.dumps(meta))
    return run.hash
