"""The demo job behind `make demo`: train a small numpy model, track it into ./.aim, compact
the repository, query it back and print a summary.

Three runs of a softmax-regression classifier on a synthetic 3-class dataset, one per learning
rate. Each tracks hyperparameters, train/val loss and accuracy per step, the weight
distribution per epoch and a confusion-matrix image at the end.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage import compact_repo

REPO = Path.cwd()
CLASSES, FEATURES, SAMPLES = 3, 8, 3000


def make_data(rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    centers = rng.normal(0, 2.0, size=(CLASSES, FEATURES))
    y = rng.integers(0, CLASSES, size=SAMPLES)
    x = centers[y] + rng.normal(0, 1.5, size=(SAMPLES, FEATURES))
    split = SAMPLES * 4 // 5
    return x[:split], y[:split], x[split:], y[split:]


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def evaluate(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[float, float, np.ndarray]:
    p = softmax(x @ w)
    loss = float(-np.log(p[np.arange(len(y)), y] + 1e-12).mean())
    return loss, float((p.argmax(axis=1) == y).mean()), p


def confusion_image(y: np.ndarray, p: np.ndarray) -> aim.Image:
    matrix = np.zeros((CLASSES, CLASSES))
    np.add.at(matrix, (y, p.argmax(axis=1)), 1)
    scaled = (matrix / matrix.max() * 255).astype(np.uint8)
    return aim.Image(np.kron(scaled, np.ones((32, 32), dtype=np.uint8)), caption="confusion")


def train(lr: float, rng: np.random.Generator, data: tuple[np.ndarray, ...]) -> str:
    x_tr, y_tr, x_va, y_va = data
    run = aim.Run(repo=REPO, experiment="demo-softmax", system_tracking_interval=1.0)
    run["hparams"] = {"learning_rate": lr, "batch_size": 64, "epochs": 5, "optimizer": "sgd"}
    run.add_tag("demo")
    w = rng.normal(0, 0.01, size=(FEATURES, CLASSES))
    step = 0
    for epoch in range(5):
        order = rng.permutation(len(y_tr))
        for start in range(0, len(order), 64):
            idx = order[start : start + 64]
            p = softmax(x_tr[idx] @ w)
            p[np.arange(len(idx)), y_tr[idx]] -= 1
            w -= lr * x_tr[idx].T @ p / len(idx)
            loss, acc, _ = evaluate(w, x_tr[idx], y_tr[idx])
            run.track(loss, name="loss", step=step, epoch=epoch, context={"subset": "train"})
            run.track(acc, name="accuracy", step=step, epoch=epoch, context={"subset": "train"})
            step += 1
        val_loss, val_acc, probs = evaluate(w, x_va, y_va)
        run.track(val_loss, name="loss", step=step, epoch=epoch, context={"subset": "val"})
        run.track(val_acc, name="accuracy", step=step, epoch=epoch, context={"subset": "val"})
        run.track(aim.Distribution(w.ravel()), name="weights", step=epoch)
        guesses = probs[:5].argmax(axis=1)
        run.track(aim.Text(f"epoch {epoch}: predicted {guesses.tolist()}, true {y_va[:5].tolist()}"),
                  name="predictions", step=epoch)  # fmt: skip
        run.log_info(f"epoch {epoch} done", val_loss=round(val_loss, 4))
    run.track(confusion_image(y_va, probs), name="confusion", step=step)
    print(f"  run {run.hash}: lr={lr:<5} val_loss={val_loss:.4f} val_acc={val_acc:.3f}")
    run.close()
    return run.hash


def main() -> int:
    rng = np.random.default_rng(0)
    data = make_data(rng)
    print(f"Training 3 runs into {REPO / '.aim'} ...")
    started = time.perf_counter()
    for lr in (0.01, 0.1, 0.5):
        train(lr, rng, data)
    print(f"  trained in {time.perf_counter() - started:.2f} s")

    report = compact_repo(RepoLayout(REPO))
    print(f"Compacted: {report.summary()}")

    repo = aim.Repo(str(REPO))
    print(f"Repository: {repo.total_runs_count()} runs")
    query = "metric.name == 'loss' and metric.context.subset == 'val' and run.hparams.learning_rate >= 0.1"
    print(f"Query: {query}")
    for collection in repo.query_metrics(query).iter_runs():
        for metric in collection:
            steps, values = metric.values.sparse_numpy()
            lr = metric.run["hparams", "learning_rate"]
            print(
                f"  run {metric.run.hash[:8]} lr={lr:<4} {metric.name}{metric.context.to_dict()}: "
                f"{len(steps)} points, steps {steps[0]}..{steps[-1]}, last {values[-1]:.4f}"
            )
    best = min(
        repo.query_metrics("metric.name == 'accuracy' and metric.context.subset == 'val'"),
        key=lambda m: -m.values.last()[1],
    )
    print(
        f"Best run by val accuracy: {best.run.hash} (lr={best.run['hparams', 'learning_rate']}, "
        f"acc={best.values.last()[1]:.3f})"
    )
    # The analyst dataset is plain Parquet: read it without aim_parquet (README, FORMAT.md).
    dataset = REPO / ".aim" / "dataset"
    current = json.loads((dataset / "current.json").read_text())
    files = [str(dataset / name) for name in current["metrics"]]
    table = ds.dataset(files, format="parquet").to_table(columns=["run_hash", "name", "value"])
    names = sorted(set(table.column("name").to_pylist()))
    print(
        f"Plain pyarrow over the {len(files)} files .aim/dataset/current.json lists: "
        f"{table.num_rows:,} metric points (one per step), "
        f"{len(set(table.column('run_hash').to_pylist()))} runs, metrics: {', '.join(names)}"
    )
    print("Also with polars, duckdb and pandas: README, 'The files are yours'")
    print(
        "Look at the runs and curves in your browser: make up "
        f"(or: .venv/bin/aim-parquet up --repo {REPO}), then open http://localhost:43800/"
    )
    from aim_parquet.ui.report import write_report

    stats = write_report(REPO, "", REPO / "aim-parquet-report.html", images=True,
                         title="aim_parquet demo: 3 softmax runs")  # fmt: skip
    print(
        f"Static report ({stats.bytes / 1e6:.2f} MB, opens offline, e.g. from a mail): {stats.path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
