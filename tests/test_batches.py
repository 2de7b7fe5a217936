"""Tests of shortlist.data.batches: jagged helpers against plain-Python references, batches,
negative sampling, and the DataLoader pipeline (determinism, workers, DDP shards)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from shortlist.data.batches import (
    EvalBatch,
    JaggedSequenceBatch,
    NegativeSampler,
    SequenceBatch,
    SequenceBatchSampler,
    batch_throughput,
    build_eval_batch,
    build_jagged_sequence_batch,
    build_sequence_batch,
    iter_eval_batches,
    jagged_from_padded,
    make_loader,
    pad,
    take,
    to_jagged,
)
from shortlist.data.build import build_dataset
from shortlist.data.schema import Jagged


# -- helpers -----------------------------------------------------------------------------------
def jagged_of(rows: list[list[int]], dtype=np.int64) -> Jagged:
    values = np.array([v for r in rows for v in r], dtype=dtype)
    return Jagged.from_lengths(values, np.array([len(r) for r in rows], dtype=np.int64))


def rows_of(j: Jagged) -> list[list[int]]:
    return [j[i].tolist() for i in range(len(j))]


def ref_pad(rows: list[list[int]], max_len: int, side: str, truncate: str) -> list[list[int]]:
    out = []
    for r in rows:
        kept = r[-max_len:] if truncate == "left" else r[:max_len]
        fill = [0] * (max_len - len(kept))
        out.append(fill + kept if side == "left" else kept + fill)
    return out


def random_jagged(rng: np.random.Generator, n_rows: int, n_items: int, mean_len: float) -> Jagged:
    lengths = rng.poisson(mean_len, size=n_rows)
    values = rng.integers(1, n_items + 1, size=int(lengths.sum()))
    return Jagged.from_lengths(values, lengths)


def assert_batches_equal(a: SequenceBatch, b: SequenceBatch) -> None:
    for name in ("input_ids", "target_ids", "lengths", "user_ids", "negatives", "timestamps"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert torch.equal(x, y), name


item_rows = st.lists(st.lists(st.integers(1, 50), max_size=12), max_size=8)
sides = st.sampled_from(["left", "right"])


# -- jagged helpers ----------------------------------------------------------------------------
@settings(max_examples=150, deadline=None)
@given(rows=item_rows, max_len=st.integers(1, 15), side=sides, truncate=sides)
def test_pad_matches_reference(rows, max_len, side, truncate):
    padded = pad(jagged_of(rows), max_len, side=side, truncate=truncate)
    assert padded.shape == (len(rows), max_len)
    assert padded.tolist() == ref_pad(rows, max_len, side, truncate)


@settings(max_examples=150, deadline=None)
@given(rows=item_rows, max_len=st.integers(1, 15), side=sides, truncate=sides)
def test_unpad_round_trips(rows, max_len, side, truncate):
    kept = [r[-max_len:] if truncate == "left" else r[:max_len] for r in rows]
    padded = pad(jagged_of(rows), max_len, side=side, truncate=truncate)
    assert rows_of(to_jagged(padded)) == kept
    lengths = np.array([len(r) for r in kept], dtype=np.int64)
    assert rows_of(jagged_from_padded(padded, lengths, side=side)) == kept


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(st.lists(st.integers(0, 3), max_size=6), max_size=6),
    max_len=st.integers(1, 8),
    side=sides,
)
def test_jagged_from_padded_keeps_values_equal_to_pad_value(rows, max_len, side):
    # Timestamps or features may be 0: lengths, not the pad value, must delimit the rows.
    padded = pad(jagged_of(rows), max_len, side=side, pad_value=-1)
    kept = [r[-max_len:] for r in rows]
    lengths = np.array([len(r) for r in kept], dtype=np.int64)
    assert rows_of(jagged_from_padded(padded, lengths, side=side)) == kept
    assert rows_of(to_jagged(padded, pad_value=-1)) == kept


@settings(max_examples=150, deadline=None)
@given(data=st.data(), rows=item_rows)
def test_take_matches_reference(data, rows):
    n = len(rows)
    picks = data.draw(st.lists(st.integers(-n, n - 1), max_size=10)) if n else []
    got = take(jagged_of(rows), np.array(picks, dtype=np.int64))
    assert rows_of(got) == [rows[p] for p in picks]
    assert got.offsets.dtype == np.int64 and got.offsets[0] == 0


def test_take_mask_and_bad_rows():
    j = jagged_of([[1, 2], [3], [4, 5, 6]])
    assert rows_of(take(j, np.array([True, False, True]))) == [[1, 2], [4, 5, 6]]
    with pytest.raises(IndexError, match="out of range"):
        take(j, [3])


def test_pad_keeps_dtype_and_handles_empty():
    j = jagged_of([[1, 2, 3]], dtype=np.int32)
    assert pad(j, 2).dtype == np.int32 and pad(j, 2, dtype=np.int64).dtype == np.int64
    empty = jagged_of([])
    assert pad(empty, 4).shape == (0, 4)
    assert pad(jagged_of([[], []]), 3).tolist() == [[0, 0, 0], [0, 0, 0]]


def test_pad_keeps_most_recent_items():
    j = jagged_of([[1, 2, 3, 4, 5], [6]])
    assert pad(j, 3).tolist() == [[3, 4, 5], [0, 0, 6]]
    assert pad(j, 3, side="right").tolist() == [[3, 4, 5], [6, 0, 0]]
    assert pad(j, 3, truncate="right").tolist() == [[1, 2, 3], [0, 0, 6]]


# -- training batches --------------------------------------------------------------------------
@settings(max_examples=100, deadline=None)
@given(rows=item_rows, max_len=st.integers(1, 10), side=sides)
def test_sequence_batch_is_next_item_shift(rows, max_len, side):
    j = jagged_of(rows)
    batch = build_sequence_batch(j, np.arange(len(rows)), max_len=max_len, side=side)
    inputs = [r[:-1][-max_len:] if len(r) >= 2 else [] for r in rows]
    targets = [r[1:][-max_len:] if len(r) >= 2 else [] for r in rows]
    assert batch.input_ids.dtype == torch.int64 and batch.target_ids.dtype == torch.int64
    assert batch.input_ids.tolist() == ref_pad(inputs, max_len, side, "left")
    assert batch.target_ids.tolist() == ref_pad(targets, max_len, side, "left")
    assert batch.lengths.tolist() == [len(t) for t in inputs]
    assert batch.user_ids.tolist() == list(range(len(rows)))
    # The jagged form holds the same cells, in row-major order.
    jb = build_jagged_sequence_batch(j, np.arange(len(rows)), max_len=max_len)
    assert rows_of(Jagged(jb.values.numpy(), jb.offsets.numpy())) == inputs
    assert jb.targets.tolist() == [t for r in targets for t in r]
    assert jb.lengths.tolist() == batch.lengths.tolist()


def test_targets_are_next_items_and_timestamps_align():
    seqs = jagged_of([[10, 11, 12, 13, 14], [20, 21]])
    times = jagged_of([[100, 101, 102, 103, 104], [0, 5]])  # a 0 timestamp is real data
    batch = build_sequence_batch(
        seqs, np.array([1, 0]), max_len=3, timestamps=times, user_ids=np.array([7, 9])
    )
    assert batch.input_ids.tolist() == [[0, 0, 20], [11, 12, 13]]
    assert batch.target_ids.tolist() == [[0, 0, 21], [12, 13, 14]]
    assert batch.timestamps.tolist() == [[0, 0, 0], [101, 102, 103]]
    assert batch.user_ids.tolist() == [9, 7]
    assert batch.num_events == 4
    jb = build_jagged_sequence_batch(seqs, np.array([1, 0]), max_len=3, timestamps=times)
    assert jb.timestamps.tolist() == [0, 101, 102, 103]
    with pytest.raises(ValueError, match="same offsets"):
        build_sequence_batch(seqs, [0], max_len=3, timestamps=jagged_of([[1, 2], [3]]))


@pytest.mark.parametrize("mode", ["uniform", "popularity"])
def test_negatives_in_range_and_never_positive(mode):
    rng = np.random.default_rng(0)
    n_items = 3  # tiny catalogue: collisions are frequent, so rejection really runs
    seqs = random_jagged(rng, 40, n_items, 8.0)
    counts = np.bincount(seqs.values, minlength=n_items + 1)
    sampler = NegativeSampler(n_items, mode=mode, counts=counts if mode == "popularity" else None)
    b = build_sequence_batch(
        seqs, np.arange(40), max_len=6, num_negatives=5, sampler=sampler, rng=rng
    )
    neg, tgt = b.negatives, b.target_ids
    assert neg.shape == (40, 6, 5)
    real = tgt != 0
    assert bool(((neg[real] >= 1) & (neg[real] <= n_items)).all())
    assert bool((neg[real] != tgt[real][:, None]).all())
    assert bool((neg[~real] == 0).all())

    jb = build_jagged_sequence_batch(
        seqs, np.arange(40), max_len=6, num_negatives=5, sampler=sampler, rng=rng
    )
    assert jb.negatives.shape == (jb.num_events, 5)
    assert bool((jb.negatives != jb.targets[:, None]).all())


def test_row_and_batch_negatives():
    rng = np.random.default_rng(1)
    n_items = 12
    seqs = random_jagged(rng, 30, n_items, 5.0)
    sampler = NegativeSampler(n_items, seed=3)
    b = build_sequence_batch(
        seqs, np.arange(30), max_len=4, num_negatives=6, sampler=sampler, negatives_per="row"
    )
    assert b.negatives.shape == (30, 6)
    for row in range(30):
        positives = set(b.target_ids[row].tolist()) - {0}
        assert not positives & set(b.negatives[row].tolist())
    assert bool(((b.negatives >= 1) & (b.negatives <= n_items)).all())

    shared = build_sequence_batch(
        seqs, np.arange(30), max_len=4, num_negatives=6, sampler=sampler,
        negatives_per="batch", reject_positives=False,
    )  # fmt: skip
    assert shared.negatives.shape == (6,)
    with pytest.raises(ValueError, match="reject_positives=False"):
        build_sequence_batch(
            seqs, [0], max_len=4, num_negatives=2, sampler=sampler, negatives_per="batch"
        )


def test_row_negatives_fail_clearly_when_row_covers_catalogue():
    seqs = jagged_of([[1, 2, 3, 1]])  # targets 2, 3, 1 cover all three items
    with pytest.raises(ValueError, match="cover every item"):
        build_sequence_batch(
            seqs, [0], max_len=5, num_negatives=1, sampler=NegativeSampler(3), negatives_per="row"
        )


def test_exact_fallback_when_rejection_keeps_colliding():
    # Item 1 holds almost all the mass: rejection alone would need ~1e12 rounds.
    sampler = NegativeSampler(2, mode="popularity", counts=np.array([0, 1e12, 1]), alpha=1.0)
    assert sampler.sample_excluding(np.array([1, 1, 1]), 4).tolist() == [[2] * 4] * 3
    with pytest.raises(ValueError, match="cover every item"):
        NegativeSampler(1).sample_excluding(np.array([1]), 1)


def test_sampler_determinism_and_popularity():
    a = NegativeSampler(1000, seed=5).sample(100)
    assert np.array_equal(a, NegativeSampler(1000, seed=5).sample(100))
    assert not np.array_equal(a, NegativeSampler(1000, seed=6).sample(100))
    pos = np.arange(1, 101)
    assert np.array_equal(
        NegativeSampler(1000, seed=5).sample_excluding(pos, 3),
        NegativeSampler(1000, seed=5).sample_excluding(pos, 3),
    )

    counts = np.array([0, 0, 1, 4, 9, 16], dtype=float)  # item 1 never occurs
    s = NegativeSampler(5, mode="popularity", counts=counts, alpha=0.5, seed=0)
    draws = s.sample(200_000)
    freq = np.bincount(draws, minlength=6)[1:] / draws.size
    expected = np.array([0, 1, 2, 3, 4]) / 10.0  # sqrt(counts) normalised
    assert freq[0] == 0
    np.testing.assert_allclose(freq, expected, atol=0.01)
    np.testing.assert_allclose(s.probabilities[1:], expected)

    seqs = jagged_of([[1, 2, 2], [2]])
    from_seqs = NegativeSampler.from_sequences(seqs, 3, alpha=1.0)
    np.testing.assert_allclose(from_seqs.probabilities, [0, 0.25, 0.75, 0])


def test_sampler_bad_arguments():
    with pytest.raises(ValueError, match="num_items"):
        NegativeSampler(0)
    with pytest.raises(ValueError, match="mode"):
        NegativeSampler(5, mode="zipf")
    with pytest.raises(ValueError, match="counts"):
        NegativeSampler(5, mode="popularity")
    with pytest.raises(ValueError, match=r"shape \(num_items \+ 1,\)"):
        NegativeSampler(5, mode="popularity", counts=np.ones(5))


def test_batches_move_and_pin():
    seqs = jagged_of([[1, 2, 3]])
    b = build_sequence_batch(seqs, [0], max_len=2, num_negatives=1, sampler=NegativeSampler(3))
    moved = b.to("cpu")
    assert isinstance(moved, SequenceBatch) and torch.equal(moved.input_ids, b.input_ids)
    assert moved.timestamps is None
    jb = build_jagged_sequence_batch(seqs, [0], max_len=2).to(torch.device("cpu"))
    assert isinstance(jb, JaggedSequenceBatch) and jb.max_len == 2
    if torch.cuda.is_available():
        assert b.pin_memory().input_ids.is_pinned()


# -- evaluation batches ------------------------------------------------------------------------
def test_eval_batches():
    history = jagged_of([[1, 2, 3, 4], [], [5]])
    users, targets = np.array([3, 4, 5]), np.array([9, 8, 7])
    b = build_eval_batch(users, history, targets, max_len=3)
    assert isinstance(b, EvalBatch)
    assert b.history.tolist() == [[2, 3, 4], [0, 0, 0], [0, 0, 5]]
    assert b.target.tolist() == [9, 8, 7] and b.user_ids.tolist() == [3, 4, 5]
    assert b.lengths.tolist() == [3, 0, 1]
    parts = list(iter_eval_batches(users, history, targets, batch_size=2, max_len=3, side="right"))
    assert [len(p.target) for p in parts] == [2, 1]
    assert torch.cat([p.history for p in parts]).tolist() == [[2, 3, 4], [0, 0, 0], [5, 0, 0]]
    with pytest.raises(ValueError, match="shape"):
        build_eval_batch(users[:2], history, targets, max_len=3)


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
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    seqs = jagged_of([[1, 2], [3, 4, 5]])
    args = dict(batch_size=2, max_len=3, num_negatives=1, shuffle=False, seed=0, num_workers=0)
    with pytest.raises(ValueError, match=message):
        make_loader(seqs, **{**args, **kwargs})


def test_bad_arguments_of_helpers():
    j = jagged_of([[1, 2]])
    with pytest.raises(ValueError, match="'max_len' parameter of pad"):
        pad(j, 0)
    with pytest.raises(ValueError, match="truncate"):
        pad(j, 2, truncate="middle")
    with pytest.raises(ValueError, match="max_len"):
        build_sequence_batch(j, [0], max_len=-1)
    with pytest.raises(ValueError, match="needs a sampler"):
        build_sequence_batch(j, [0], max_len=2, num_negatives=1)
    with pytest.raises(ValueError, match="batch_size"):
        list(iter_eval_batches([0], j, [1], batch_size=0, max_len=2))
    with pytest.raises(ValueError, match="lengths"):
        jagged_from_padded(np.zeros((1, 2)), np.array([3]))


def test_batch_throughput_reports_rates():
    seqs = random_jagged(np.random.default_rng(0), 64, 100, 20.0)
    out = batch_throughput(seqs, 16, 10, 1, 0, 6)  # cycles epochs past the 4 batches of one
    assert out["events_per_s"] > 0 and out["batches_per_s"] > 0
    assert out["n_batches"] == 6 and out["events"] > 0
