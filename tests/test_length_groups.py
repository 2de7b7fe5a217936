"""train.length_groups: rows grouped by length, and the groups' weighted losses giving the padded
batch's gradient (train/length_groups.py, the trainer's accumulation)."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest
import torch

from seq_helpers import cyclic_sequences
from shortlist.data.batches import SequenceBatch
from shortlist.data.sequences import Jagged
from shortlist.models import build_model
from shortlist.train.length_groups import group_rows, group_weights, length_groups, take_rows
from shortlist.train.trainer import TrainConfig, Trainer, trim_padding


def _batch(lengths: list[int], L: int = 12, num_items: int = 30, seed: int = 0) -> SequenceBatch:
    """A left-padded batch with the given real lengths, timestamps and per-position negatives."""
    g = torch.Generator().manual_seed(seed)
    B = len(lengths)
    inputs = torch.randint(1, num_items + 1, (B, L), generator=g)
    targets = torch.randint(1, num_items + 1, (B, L), generator=g)
    real = torch.arange(L)[None, :] >= L - torch.tensor(lengths)[:, None]  # (B, L)
    times = torch.cumsum(torch.randint(1, 100, (B, L), generator=g), 1)
    return SequenceBatch(
        input_ids=inputs * real,
        target_ids=targets * real,
        lengths=torch.tensor(lengths),
        user_ids=torch.arange(B),
        timestamps=times * real,
        negatives=torch.randint(1, num_items + 1, (B, L, 2), generator=g) * real[..., None],
    )


def test_group_rows_partition_by_length() -> None:
    lengths = torch.tensor([3, 100, 30, 2, 90, 25, 1, 8])
    groups = group_rows(lengths, 8)
    assert sorted(torch.cat(groups).tolist()) == list(range(8))  # every row once
    for g in groups:  # within a group, every row is longer than a quarter of the longest
        assert (lengths[g] * 4 > lengths[g].max()).all()
    # 25 is not above a quarter of 100: it opens the second group
    assert [sorted(lengths[g].tolist()) for g in groups] == [[30, 90, 100], [8, 25], [1, 2, 3]]
    capped = group_rows(lengths, 2)  # the last allowed group takes the rest
    assert [sorted(lengths[g].tolist()) for g in capped] == [[30, 90, 100], [1, 2, 3, 8, 25]]
    assert [g.tolist() for g in group_rows(lengths, 1)] == [
        torch.argsort(-lengths, stable=True).tolist()
    ]
    with pytest.raises(ValueError, match=r"max_groups must be an int >= 1\. Got 0"):
        group_rows(lengths, 0)
    with pytest.raises(ValueError, match=r"ratio must be > 1\. Got 1\.0"):
        group_rows(lengths, 2, ratio=1.0)


def test_take_rows_indexes_every_per_row_field() -> None:
    batch = _batch([2, 12, 5])
    part = take_rows(batch, torch.tensor([2, 0]))
    for name in ("input_ids", "target_ids", "lengths", "user_ids", "timestamps", "negatives"):
        torch.testing.assert_close(getattr(part, name), getattr(batch, name)[[2, 0]])
    shared = SequenceBatch(**{**batch.__dict__, "negatives": torch.tensor([4, 5, 6])})
    torch.testing.assert_close(take_rows(shared, torch.tensor([1])).negatives, shared.negatives)
    assert length_groups(batch, 1)[0] is batch
    assert group_weights(length_groups(batch, 3)) == [17 / 19, 2 / 19]  # rows (12, 5), (2,)


@pytest.mark.parametrize("name", ["sasrec", "hstu", "ksa", "elastic"])
def test_weighted_groups_give_the_padded_batch_gradient(name: str) -> None:
    extra = {
        "hstu": {"loss": "softmax", "linear_dropout": 0.0},  # its defaults: sampled, dropout
        "ksa": {"chunk_size": 4, "window": 1},
        "elastic": {"num_experts": 4, "memory_size": 0, "chunk_size": 4, "decay_half_life": 8},
    }.get(name, {})
    torch.manual_seed(0)
    model = build_model(name, num_items=30, max_len=40, dim=16, num_heads=2, dropout=0.0, **extra)
    batch = _batch([40, 9, 33, 1, 7, 25, 2], L=40)  # groups (40, 33, 25), (9, 7), (2, 1)

    def grads(groups: list[SequenceBatch], weights: list[float]) -> dict[str, torch.Tensor]:
        model.zero_grad()
        for group, weight in zip(groups, weights, strict=True):
            (model.compute_loss(trim_padding(group)).loss * weight).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    whole = grads([batch], [1.0])
    groups = length_groups(batch, 3)
    assert [sorted(g.lengths.tolist()) for g in groups] == [[25, 33, 40], [7, 9], [1, 2]]
    split = grads(groups, group_weights(groups))
    assert whole.keys() == split.keys()
    for n in whole:
        torch.testing.assert_close(split[n], whole[n], rtol=1e-4, atol=1e-6, msg=n)


def test_trainer_accumulates_the_groups_to_the_batch_gradient(tmp_path: Path) -> None:
    # the trainer's step (trim, weights, backward per group) against the padded batch's gradient
    # (whole training runs are not compared: AdamW turns the float noise of gradients that are zero
    # in exact arithmetic, such as attention's key bias, into full-size steps)
    rng = np.random.default_rng(0)
    lengths = rng.choice([2, 3, 4, 25, 40], size=48)  # skewed, as real histories
    seqs = Jagged.from_lengths(rng.integers(1, 21, lengths.sum()), lengths)
    config = {"epochs": 1, "batch_size": 16, "num_workers": 0, "progress": False}
    results = []
    for groups in (1, 4):
        torch.manual_seed(0)
        model = build_model("sasrec", num_items=20, max_len=40, dim=16, num_heads=2, dropout=0.0)
        trainer = Trainer(model, seqs, TrainConfig(**config, length_groups=groups), tmp_path)
        loader = trainer._loader()
        loader.set_epoch(0)
        batch = next(iter(loader))
        model.zero_grad()
        loss = trainer._accumulate(
            batch, lambda b, m=model: m.compute_loss(b).loss, model, nullcontext
        )
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((loss, grads, len(length_groups(batch, groups))))
    (loss1, grads1, n1), (loss4, grads4, n4) = results
    assert (n1, n4) == (1, 2)  # rows of 24-39 events, then of 1-3
    torch.testing.assert_close(loss4, loss1)
    for n in grads1:
        torch.testing.assert_close(grads4[n], grads1[n], rtol=1e-4, atol=1e-6, msg=n)
    with pytest.raises(
        ValueError, match="'length_groups' parameter of TrainConfig must be an int >= 1"
    ):
        TrainConfig(length_groups=0)


def test_length_groups_train_a_learnable_task(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model("sasrec", num_items=20, max_len=10, dim=16, num_heads=2, dropout=0.1)
    config = TrainConfig(
        epochs=3, batch_size=16, lr=0.01, num_workers=0, progress=False, length_groups=3
    )
    result = Trainer(model, cyclic_sequences(), config, tmp_path).fit()
    first, last = result.history[0], result.history[-1]
    assert result.epochs_run == 3 and last["loss"] < first["loss"]


def test_benchmark_gradient_gap_is_float_rounding(tmp_path: Path) -> None:
    # benchmarks/length_groups_speed.py's check: the trainer's grouped step against the padded batch
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import length_groups_speed

    rng = np.random.default_rng(1)
    lengths = rng.choice([2, 3, 30, 40], size=32)
    seqs = Jagged.from_lengths(rng.integers(1, 21, lengths.sum()), lengths)
    torch.manual_seed(0)
    model = build_model("sasrec", num_items=20, max_len=40, dim=16, num_heads=2, dropout=0.3)
    config = TrainConfig(batch_size=16, num_workers=0, progress=False, length_groups=3)
    trainer = Trainer(model, seqs, config, tmp_path)
    assert length_groups_speed.gradient_gap(model, trainer) < 1e-5
    assert model.training  # set back to training mode
