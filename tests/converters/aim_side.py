"""Run by the Aim virtualenv's Python (not by pytest): `aim_side.py write REPO` writes an Aim
repository with Aim itself; `aim_side.py dump REPO OUT.json` reads it back with Aim's SDK (after
Aim's own re-index, on a copy) and writes every run, param and point as JSON."""

from __future__ import annotations

import base64
import json
import math
import os
import shutil
import sys
import tempfile
from typing import Any

SEQUENCE_TYPES = ("metric", "images", "texts", "distributions", "audios", "figures")


def write(repo: str) -> None:
    import aim
    import numpy as np

    rng = np.random.default_rng(0)
    run = aim.Run(
        repo=repo, experiment="exp-a", system_tracking_interval=None, capture_terminal_logs=True
    )
    run["hparams"] = {"lr": 0.001, "layers": [64, 32], "nested": {"a": True, "b": None}}
    run["seed"] = 7
    run.name = "first"
    run.description = "the first run"
    run.add_tag("baseline")
    run.add_tag("cnn")
    for step in range(0, 60, 3):
        run.track(
            1.0 / (step + 1), name="loss", step=step, epoch=step // 20, context={"subset": "train"}
        )
        run.track(step, name="count", step=step)
    run.track(float("nan"), name="loss", step=100, context={"subset": "val"})
    run.track(2.5, name="loss", step=101, context={"subset": "val"})
    image = rng.integers(0, 255, (8, 6, 3), dtype=np.uint8)
    run.track(aim.Image(image, caption="a caption"), name="img", step=2, epoch=1)
    run.track([aim.Text("first text"), aim.Text("second")], name="txt", step=4)
    run.track(
        aim.Distribution(np.arange(100) % 7, bin_count=7), name="dist", step=0, context={"layer": 1}
    )
    run.track(aim.Distribution(rng.normal(size=50)), name="dist", step=3, context={"layer": 1})
    run.track(
        aim.Audio(np.sin(np.linspace(0, 10, 800)), rate=8000, caption="tone"), name="aud", step=1
    )
    print("terminal line one")
    print("terminal line two")
    run.log_info("an info", k=1)
    run.log_warning("a warning")
    run.close()
    second = aim.Run(
        repo=repo, experiment="exp-b", system_tracking_interval=None, capture_terminal_logs=False
    )
    second.name = "archived one"
    second.track(5, name="m", step=10)
    second.archived = True
    second.close()
    crashed = aim.Run(
        repo=repo, experiment="exp-b", system_tracking_interval=None, capture_terminal_logs=False
    )
    crashed.name = "crashed"
    crashed.track(0.5, name="m", step=1)
    crashed.track(0.25, name="m", step=2)
    sys.stdout.flush()
    os._exit(0)  # killed: never closed, so never indexed by Aim and without an end time


def _number(value: Any) -> Any:
    value = float(value)
    return "nan" if math.isnan(value) else value


def _object(value: Any) -> Any:
    if isinstance(value, list):
        return [_object(v) for v in value]
    name = type(value).get_typename()
    storage = value.storage
    if name == "aim.image":
        return {
            "payload": base64.b64encode(bytes(storage["data"])).decode(),
            "caption": storage.get("caption", ""),
            "format": storage["format"],
            "size": [storage["width"], storage["height"]],
        }
    if name == "aim.distribution":
        return {
            "weights": [float(w) for w in value.weights],
            "range": [float(r) for r in value.range],
        }
    if name in ("aim.text", "aim.log_line"):
        return {"text": str(value.data)}
    if name == "aim.audio":
        return {
            "payload": base64.b64encode(bytes(storage["data"])).decode(),
            "format": storage["format"],
            "caption": storage.get("caption", ""),
        }
    if name == "aim.log_record":
        return {
            "message": storage["message"],
            "level": storage["log_level"],
            "timestamp": storage["timestamp"],
            "extra": storage.get("extra_args") or {},
        }
    raise TypeError(name)


def _sequence(seq: Any, dtype: str) -> dict[str, Any]:
    steps, (values, epochs, times) = seq.data.items_list()
    is_metric = dtype in ("float", "int", "number", "float64")
    return {
        "dtype": dtype,
        "steps": [int(s) for s in steps],
        "epochs": [
            None if e is None or (isinstance(e, float) and math.isnan(e)) else int(e)
            for e in epochs
        ],
        "times": [float(t) for t in times],
        "values": [_number(v) if is_metric else _object(v) for v in values],
    }


def dump(repo: str, out: str) -> None:
    import aim
    from aim.storage.context import Context

    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, "copy")
        shutil.copytree(repo, copy)
        source = aim.Repo(copy)
        source._recreate_index()  # what `aim reindex` does: the crashed run becomes visible
        runs = []
        for run in source.iter_runs():
            sequences = []
            info = run.collect_sequence_info(list(SEQUENCE_TYPES))
            getters = {
                "metric": run.get_metric,
                "images": run.get_image_sequence,
                "texts": run.get_text_sequence,
                "distributions": run.get_distribution_sequence,
                "audios": run.get_audio_sequence,
                "figures": run.get_figure_sequence,
            }
            for seq_type, items in info.items():
                for item in items:
                    seq = getters[seq_type](item["name"], Context(item["context"]))
                    entry = _sequence(seq, item["values"]["dtype"])
                    sequences.append({"name": item["name"], "context": item["context"], **entry})
            for seq in (run.get_terminal_logs(), run.get_log_records()):
                if seq is not None:
                    dtype = "aim.log_line" if seq.name == "logs" else "aim.log_record"
                    sequences.append({"name": seq.name, "context": {}, **_sequence(seq, dtype)})
            runs.append(
                {
                    "hash": run.hash,
                    "name": run.name,
                    "experiment": run.experiment,
                    "description": run.description,
                    "tags": sorted(run.tags),
                    "archived": run.archived,
                    "creation_time": run.creation_time,
                    "end_time": run.end_time,
                    "params": run[...],
                    "sequences": sequences,
                }
            )
    with open(out, "w") as fh:
        json.dump(runs, fh)


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2])
    else:
        dump(sys.argv[2], sys.argv[3])
