"""AimCallback in a real Transformers Trainer: a tiny random BERT from a local config (offline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integrations.conftest import QUIET, import_or_skip, only_run, query

pytestmark = pytest.mark.integrations

torch = import_or_skip("torch")
transformers = import_or_skip("transformers")


class RandomTokens(torch.utils.data.Dataset):  # type: ignore[misc,name-defined]
    """`n` random token sequences with binary labels (no tokenizer, no download)."""

    def __init__(self, n: int, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.input_ids = torch.randint(5, 64, (n, 12), generator=gen)
        self.labels = torch.randint(0, 2, (n,), generator=gen)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {
            "input_ids": self.input_ids[i],
            "attention_mask": torch.ones_like(self.input_ids[i]),
            "labels": self.labels[i],
        }


def _tiny_bert() -> Any:
    config = transformers.BertConfig(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=32,
        num_labels=2,
    )
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(config)


def test_trainer_logs_params_metrics_and_subsets(tmp_path: Path) -> None:
    from aim_parquet.hugging_face import AimCallback

    callback = AimCallback(repo=tmp_path, experiment="hf", **QUIET)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        per_device_eval_batch_size=8,
        num_train_epochs=2,
        learning_rate=1e-3,
        logging_steps=1,
        eval_strategy="epoch",
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
        dataloader_num_workers=0,
    )
    trainer = transformers.Trainer(
        model=_tiny_bert(),
        args=args,
        train_dataset=RandomTokens(8, seed=1),
        eval_dataset={"books": RandomTokens(8, seed=2), "news": RandomTokens(8, seed=3)},
        callbacks=[callback],
    )
    trainer.train()
    trainer.evaluate(RandomTokens(8, seed=4), metric_key_prefix="test")
    callback.close()

    run = only_run(tmp_path)  # evaluate() after training resumed the same run
    assert run.experiment == "hf"
    hparams = run.params["hparams"]
    assert hparams["learning_rate"] == 1e-3
    assert hparams["num_train_epochs"] == 2
    assert hparams["per_device_train_batch_size"] == 4
    model = run.params["model"]
    assert model["hidden_size"] == 32 and model["num_hidden_layers"] == 2
    assert model["num_labels"] == 2

    loss = run.metric("loss")  # per-step training loss: 2 batches x 2 epochs
    assert [step for step, _, _ in loss] == [1, 2, 3, 4]
    assert [epoch for _, _, epoch in loss] == [0, 1, 1, 2]  # floor of Trainer's float epoch
    assert "learning_rate" in run.names()
    train_loss = run.metric("loss", subset="train")  # the end-of-training summary
    assert [step for step, _, _ in train_loss] == [4]
    for sub_dataset in ("books", "news"):
        evals = run.metric("loss", subset="eval", sub_dataset=sub_dataset)
        assert [step for step, _, _ in evals] == [2, 4]
        assert "runtime" in run.names(subset="eval", sub_dataset=sub_dataset)
    test = run.metric("loss", subset="test")
    assert len(test) == 1 and test[0][0] == 4 and test[0][1] > 0
    assert run.end_time is not None
    books = query(tmp_path, "metrics", "metric.context.sub_dataset == 'books'")
    assert {seq.name for seq in books} == {
        "loss",
        "runtime",
        "samples_per_second",
        "steps_per_second",
    }
    assert query(tmp_path, "runs", "run.model.hidden_size == 32 and run.hparams.seed == 0")
