"""One process of a 2-rank job for tests/integrations/test_ddp.py. argv: mode, repo.

- `torch`: launched by torchrun (`python -m torch.distributed.run --nproc_per_node 2`): a gloo
  process group, a DDP-wrapped model, `aim.Run()` in every rank, `track_*_dists` on the wrapped
  model in every rank, `loss` tracked by rank 0;
- `lightning`: started with plain `python`; `Trainer(strategy="ddp", devices=2)` on the CPU
  starts rank 1 itself (Lightning's own launcher, a gloo group) and `AimLogger` logs;
- `hf+keras`: started by the test with torchrun's environment variables (no process group):
  the Transformers callback driven through its hooks as the Trainer calls them (into
  `<repo>/hf`), then a real Keras fit (into `<repo>/keras`; the job's second run).

Every mode tracks system metrics every 0.1 s and keeps each rank busy for about a second, so
every rank delivers samples.
"""

from __future__ import annotations

import os
import sys
import time
from types import SimpleNamespace
from typing import Any

SYSTEM = {"system_tracking_interval": 0.1, "capture_terminal_logs": False}
BUSY_S = 0.15


def torch_job(repo: str) -> None:
    import torch
    import torch.distributed as dist

    import aim_parquet as aim
    from aim_parquet.pytorch import track_gradients_dists, track_params_dists

    dist.init_process_group("gloo")
    torch.manual_seed(0)
    model = torch.nn.parallel.DistributedDataParallel(
        torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    run = aim.Run(repo=repo, **SYSTEM)  # every rank: the job's run
    for step in range(6):
        x = torch.randn(16, 4)
        loss = (model(x) - x.sum(dim=1, keepdim=True)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        track_gradients_dists(model, run)
        optimizer.step()
        track_params_dists(model, run)
        if dist.get_rank() == 0:
            run.track(float(loss), name="loss", step=step)
        time.sleep(BUSY_S)
    run.close()
    dist.barrier()
    dist.destroy_process_group()


def lightning_job(repo: str) -> None:
    import lightning as L
    import torch

    from aim_parquet.pytorch_lightning import AimLogger

    class Model(L.LightningModule):  # type: ignore[misc,name-defined]
        def __init__(self, lr: float = 0.05) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Linear(4, 1)

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x), y)
            self.log("train_loss", loss)
            time.sleep(BUSY_S)
            return loss

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    x = torch.randn(32, 4, generator=torch.Generator().manual_seed(0))
    data = torch.utils.data.TensorDataset(x, x.sum(dim=1, keepdim=True))
    trainer = L.Trainer(
        strategy="ddp",
        accelerator="cpu",
        devices=2,
        max_epochs=2,
        logger=AimLogger(repo=repo, log_system_params=False, **SYSTEM),
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(Model(), torch.utils.data.DataLoader(data, batch_size=8))


def hf_job(repo: str) -> None:
    from aim_parquet.hugging_face import AimCallback

    rank = int(os.environ["RANK"])
    callback = AimCallback(repo=repo, log_system_params=False, **SYSTEM)
    args = SimpleNamespace(process_index=rank, to_dict=lambda: {"learning_rate": 0.1})
    state = SimpleNamespace(is_world_process_zero=rank == 0, global_step=0, epoch=0.0)
    callback.on_train_begin(args, state, None)
    for step in range(1, 7):  # the Trainer calls on_log in every process
        state.global_step, state.epoch = step, step / 3
        callback.on_log(args, state, None, logs={"loss": 1.0 / step, "learning_rate": 0.1})
        time.sleep(BUSY_S)
    callback.on_train_end(args, state, None)


def keras_job(repo: str) -> None:
    import keras
    import numpy as np

    from aim_parquet.keras import AimCallback

    class Busy(keras.callbacks.Callback):  # type: ignore[misc,name-defined]
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            time.sleep(3 * BUSY_S)

    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    callback = AimCallback(repo=repo, log_system_params=False, **SYSTEM)
    model.fit(x, x.sum(axis=1), epochs=2, verbose=0, callbacks=[callback, Busy()])


if __name__ == "__main__":
    mode, repo_path = sys.argv[1], sys.argv[2]
    if mode == "hf+keras":  # one launch for both: each process imports torch once
        hf_job(os.path.join(repo_path, "hf"))
        keras_job(os.path.join(repo_path, "keras"))
    else:
        {"torch": torch_job, "lightning": lightning_job}[mode](repo_path)
