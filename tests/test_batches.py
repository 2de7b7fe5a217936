"""Tests of shortlist.data.batches: padded and jagged training batches against plain-Python
references, evaluation batches, moving, pinning and pickling."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from seq_helpers import assert_batches_equal, item_rows, jagged_of, ref_pad, rows_of, sides
from shortlist.data.batches import (
    EvalBatch,
    JaggedSequenceBatch,
    SequenceBatch,
    build_eval_batch,
    build_jagged_sequence_batch,
    build_sequence_batch,
    iter_eval_batches,
)
from shortlist.data.jagged import jagged_from_padded, pad
from shortlist.data.negatives import NegativeSampler
from shortlist.data.sequences import Jagged

# -- helpers -----------------------------------------------------------------------------------


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


def test_batches_pickle_round_trip():
    seqs = jagged_of([[1, 2, 3, 4], [5, 6]])
    times = jagged_of([[9, 8, 7, 6], [0, 1]])
    sampler = NegativeSampler(6)
    b = build_sequence_batch(seqs, [0, 1], max_len=3, num_negatives=2, sampler=sampler)
    assert_batches_equal(pickle.loads(pickle.dumps(b)), b)  # packed form, timestamps None
    bt = build_sequence_batch(seqs, [1, 0], max_len=2, timestamps=times)
    assert_batches_equal(pickle.loads(pickle.dumps(bt)), bt)
    jb = build_jagged_sequence_batch(seqs, [0, 1], max_len=2, num_negatives=1, sampler=sampler)
    back = pickle.loads(pickle.dumps(jb))
    assert back.max_len == 2 and torch.equal(back.offsets, jb.offsets)
    assert torch.equal(back.negatives, jb.negatives) and torch.equal(back.targets, jb.targets)
    mixed = EvalBatch(
        history=torch.zeros(2, 3, dtype=torch.int64),
        target=torch.ones(2, dtype=torch.int32),  # mixed dtypes: pickled field by field
        user_ids=torch.arange(2),
        lengths=torch.zeros(2, dtype=torch.int64),
    )
    assert pickle.loads(pickle.dumps(mixed)).target.dtype == torch.int32


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
    assert [rows.tolist() for rows, _ in parts] == [[0, 1], [2]]
    assert [len(p.target) for _, p in parts] == [2, 1]
    assert torch.cat([p.history for _, p in parts]).tolist() == [[2, 3, 4], [0, 0, 0], [5, 0, 0]]
    with pytest.raises(ValueError, match="shape"):
        build_eval_batch(users[:2], history, targets, max_len=3)


def test_eval_batches_by_length_hand_computed():
    history = jagged_of([[1, 2, 3, 4], [], [5], [6, 7]])
    users, targets = np.array([3, 4, 5, 6]), np.array([9, 8, 7, 6])
    parts = list(
        iter_eval_batches(users, history, targets, batch_size=2, max_len=3, by_length=True)
    )
    # sorted by the kept length (0, 1, 2, 3); each batch as wide as its longest kept history
    assert [rows.tolist() for rows, _ in parts] == [[1, 2], [3, 0]]
    assert parts[0][1].history.tolist() == [[0], [5]]
    assert parts[1][1].history.tolist() == [[0, 6, 7], [2, 3, 4]]
    assert parts[1][1].target.tolist() == [6, 9] and parts[1][1].lengths.tolist() == [2, 3]
    with pytest.raises(ValueError, match="'max_len' parameter of iter_eval_batches"):
        list(iter_eval_batches(users, history, targets, batch_size=2, max_len=0, by_length=True))


# -- argument checks ---------------------------------------------------------------------------
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
