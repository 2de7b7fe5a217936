"""Tests of shortlist.data.loader: the DataLoader pipeline (determinism, workers, DDP shards,
argument checks, throughput)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from seq_helpers import assert_batches_equal, jagged_of, random_jagged
from shortlist.data.batches import JaggedSequenceBatch, SequenceBatch
from shortlist.data.build import build_dataset
from shortlist.data.loader import SequenceBatchSampler, batch_throughput, make_loader
from shortlist.data.sequences import Jagged


# -- helpers -----------------------------------------------------------------------------------
# -- loader ------------------------------------------------------------------------------------
def collect(loader) -> list[SequenceBatch]:
    return list(loader)


def test_loader_is_deterministic_and_skips_short_sequences():
    rng = np.random.default_rng(0)
    seqs = random_jagged(rng, 101, 50, 6.0)
    lengths = seqs.lengths
    kwargs = dict(batch_size=16, max_len=5, num_negatives=2, shuffle=True, seed=11, num_workers=0)
    first = collect(make_loader(seqs, **kwargs))
    second = collect(make_loader(seqs, **kwargs))
    assert len(first) == len(second) > 0
    for a, b in zip(first, second, strict=True):
        assert_batches_equal(a, b)
    users = torch.cat([b.user_ids for b in first]).numpy()
    assert sorted(users.tolist()) == np.flatnonzero(lengths >= 2).tolist()
    assert (lengths < 2).any()  # the data really has skipped rows

    loader = make_loader(seqs, **kwargs)
    loader.set_epoch(1)
    epoch1 = torch.cat([b.user_ids for b in collect(loader)])
    assert not torch.equal(epoch1, torch.from_numpy(users))
    assert sorted(epoch1.tolist()) == sorted(users.tolist())
    loader.set_epoch(0)
    assert torch.equal(torch.cat([b.user_ids for b in collect(loader)]), torch.from_numpy(users))

    other_seed = collect(make_loader(seqs, **{**kwargs, "seed": 12}))
    assert not torch.equal(other_seed[0].user_ids, first[0].user_ids)


def test_loader_workers_match_in_process():
    rng = np.random.default_rng(2)
    seqs = random_jagged(rng, 90, 30, 7.0)
    times = Jagged(rng.integers(0, 10**9, size=len(seqs.values)), seqs.offsets)
    kwargs = dict(
        batch_size=8, max_len=6, num_negatives=3, shuffle=True, seed=4,
        user_ids=np.arange(90) + 1000, timestamps=times,
    )  # fmt: skip
    in_process = make_loader(seqs, num_workers=0, **kwargs)
    workers = make_loader(seqs, num_workers=2, **kwargs)
    assert workers.persistent_workers and not in_process.persistent_workers
    for epoch in (0, 1):  # persistent workers must follow set_epoch
        in_process.set_epoch(epoch)
        workers.set_epoch(epoch)
        a, b = collect(in_process), collect(workers)
        assert len(a) == len(b) == len(in_process)
        for x, y in zip(a, b, strict=True):
            assert_batches_equal(x, y)
        assert int(a[0].user_ids.min()) >= 1000


def test_loader_jagged_layout_matches_padded():
    rng = np.random.default_rng(3)
    seqs = random_jagged(rng, 40, 20, 6.0)
    kwargs = dict(batch_size=8, max_len=4, num_negatives=2, shuffle=True, seed=0, num_workers=0)
    padded = collect(make_loader(seqs, **kwargs))
    jagged = collect(make_loader(seqs, layout="jagged", **kwargs))
    for p, j in zip(padded, jagged, strict=True):
        assert isinstance(j, JaggedSequenceBatch)
        real = p.target_ids != 0
        assert torch.equal(p.input_ids[real], j.values)
        assert torch.equal(p.target_ids[real], j.targets)
        assert torch.equal(p.negatives[real], j.negatives)  # same seeds, same draws


@pytest.mark.parametrize("n_users", [30, 31])
def test_ddp_shards_partition_users(n_users):
    lengths = np.full(n_users, 3)
    world = 3
    shards = [
        SequenceBatchSampler(lengths, batch_size=4, seed=1, rank=r, world_size=world)
        for r in range(world)
    ]
    rows = [np.concatenate([k.rows for k in s]) for s in shards]
    assert len({len(s) for s in shards}) == 1  # same number of batches on every rank
    assert np.array_equal(np.sort(np.unique(np.concatenate(rows))), np.arange(n_users))
    if n_users % world == 0:
        assert sum(len(r) for r in rows) == n_users  # disjoint: an exact partition
    else:
        assert sum(len(r) for r in rows) == world * -(-n_users // world)
    assert {k.rank for s in shards for k in s} == set(range(world))


def test_ddp_ranks_draw_different_negatives():
    seqs = random_jagged(np.random.default_rng(0), 20, 1000, 5.0)
    kwargs = dict(batch_size=20, max_len=4, num_negatives=3, shuffle=False, seed=0, num_workers=0)
    a = collect(make_loader(seqs, rank=0, world_size=2, **kwargs))
    b = collect(make_loader(seqs, rank=1, world_size=2, **kwargs))
    assert not set(a[0].user_ids.tolist()) & set(b[0].user_ids.tolist())
    assert not torch.equal(a[0].negatives[:, -1], b[0].negatives[:, -1])


def test_loader_on_built_dataset_and_empty_input():
    raw = pl.DataFrame(
        {
            "user_id": ["a", "a", "a", "b", "c", "c"],
            "item_id": ["x", "y", "z", "x", "y", "x"],
            "timestamp": [1, 2, 3, 1, 5, 6],
        }
    )
    data = build_dataset("tiny", raw, order="time")
    seqs = data.sequences()
    loader = make_loader(
        seqs, batch_size=4, max_len=3, num_negatives=1, shuffle=False, seed=0, num_workers=0,
        num_items=data.num_items, timestamps=data.sequences("timestamp"),
    )  # fmt: skip
    (batch,) = collect(loader)
    assert batch.user_ids.tolist() == [0, 2]  # user b has one event: skipped
    assert batch.input_ids.tolist() == [[0, 1, 2], [0, 0, 2]]
    assert batch.target_ids.tolist() == [[0, 2, 3], [0, 0, 1]]
    assert batch.timestamps.tolist() == [[0, 1, 2], [0, 0, 5]]

    empty = make_loader(
        jagged_of([[], [4]]), batch_size=2, max_len=3, num_negatives=0, shuffle=True, seed=0,
        num_workers=0,
    )  # fmt: skip
    assert len(empty) == 0 and collect(empty) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_len": 0}, "'max_len' parameter of make_loader must be a positive int. Got 0"),
        ({"batch_size": 0}, "'batch_size' parameter of make_loader must be a positive int"),
        ({"batch_size": -3}, "batch_size"),
        ({"num_negatives": -1}, "num_negatives"),
        ({"num_workers": -1}, "num_workers"),
        ({"side": "middle"}, "'side' parameter"),
        ({"negatives_per": "user"}, "negatives_per"),
        ({"rank": 2, "world_size": 2}, "rank"),
        ({"user_ids": np.arange(3)}, "user_ids"),
        ({"num_items": 4}, "beyond the sampler's num_items=4"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    seqs = jagged_of([[1, 2], [3, 4, 5]])
    args = dict(batch_size=2, max_len=3, num_negatives=1, shuffle=False, seed=0, num_workers=0)
    with pytest.raises(ValueError, match=message):
        make_loader(seqs, **{**args, **kwargs})


def test_loader_rejects_padding_inside_sequences():
    with pytest.raises(ValueError, match=r"item indices 1\.\.N"):
        make_loader(
            jagged_of([[1, 0, 2]]), batch_size=1, max_len=2, num_negatives=0, shuffle=False,
            seed=0, num_workers=0,
        )  # fmt: skip


def test_batch_throughput_reports_rates():
    seqs = random_jagged(np.random.default_rng(0), 64, 100, 20.0)
    out = batch_throughput(seqs, 16, 10, 1, 0, 6)  # cycles epochs past the 4 batches of one
    assert out["events_per_s"] > 0 and out["batches_per_s"] > 0
    assert out["n_batches"] == 6 and out["events"] > 0 and out["main_cpu_per_batch_s"] > 0
