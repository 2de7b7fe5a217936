"""Every registered model trains a few steps through the common trainer and round-trips save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from shortlist.data.batches import EvalBatch
from shortlist.data.sequences import Jagged
from shortlist.models import MODELS, build_model, load_model
from shortlist.models.rankers import Ranker
from shortlist.train.trainer import TrainConfig, Trainer

TINY = {"max_len": 8, "dim": 16}


# rankers have their own smoke test: tests/test_rankers.py
RETRIEVERS = [n for n in MODELS.names() if not issubclass(MODELS.get(n), Ranker)]


@pytest.mark.parametrize("name", RETRIEVERS)
def test_every_model_trains_and_round_trips(name: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 10, 32)
    data = Jagged.from_lengths(rng.integers(1, 16, int(lengths.sum())), lengths)
    times = Jagged.from_lengths(np.sort(rng.integers(0, 10**6, int(lengths.sum()))), lengths)
    torch.manual_seed(0)
    model = build_model(name, num_items=15, **TINY)
    cfg = TrainConfig(epochs=2, batch_size=8, num_workers=0, progress=False, max_steps_per_epoch=3)
    result = Trainer(model, data, cfg, tmp_path, timestamps=times).fit()
    assert result.epochs_run == 2 and all(np.isfinite(r["loss"]) for r in result.history)
    again = load_model(tmp_path / "best").eval()
    model.eval()
    batch = EvalBatch(
        history=torch.tensor([[0, 0, 0, 1, 2, 3, 4, 5]]),
        target=torch.tensor([6]),
        user_ids=torch.tensor([0]),
        lengths=torch.tensor([5]),
    )
    torch.testing.assert_close(again.score_all(batch), model.score_all(batch))
    assert again.score_all(batch).shape == (1, 16)


@pytest.mark.parametrize("name", ["sasrec", "ksa", "elastic"])
@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("loss", "bpr", "must be 'softmax' or 'sampled_softmax'. Got 'bpr'"),
        ("dropout", 1.0, r"must be in \[0, 1\). Got 1.0"),
        ("temperature", 0.0, "must be > 0. Got 0.0"),
        ("num_negatives", -1, "must be an int >= 0. Got -1"),
        ("max_len", True, "must be an int >= 1. Got True"),
    ],
)
def test_next_item_configs_share_their_checks(
    name: str, key: str, value: object, message: str
) -> None:
    config_class = MODELS.get(name).config_class
    with pytest.raises(
        ValueError, match=rf"The '{key}' parameter of {config_class.__name__} {message}"
    ):
        config_class(num_items=10, **{key: value})
