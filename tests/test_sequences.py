"""NumPy sequence containers: split save/load round trip, and a training path free of Polars."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl

from shortlist.data.build import build_dataset
from shortlist.data.sequences import SequenceSplit
from shortlist.data.splits import leave_one_out, tiger_split


def _data(with_time: bool):
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(30), rng.integers(1, 9, 30))
    frame = pl.DataFrame({"user_id": users, "item_id": rng.integers(0, 40, len(users))})
    if with_time:
        frame = frame.with_columns(pl.Series("timestamp", np.arange(len(users)) * 7))
    return build_dataset("t", frame, order="time" if with_time else "sequence")


def _equal(a: SequenceSplit, b: SequenceSplit) -> None:
    assert (a.protocol, a.num_items, a.max_history) == (b.protocol, b.num_items, b.max_history)
    np.testing.assert_array_equal(a.train_users, b.train_users)
    for x, y in (
        (a.train, b.train),
        (a.valid.history, b.valid.history),
        (a.test.history, b.test.history),
    ):
        np.testing.assert_array_equal(x.values, y.values)
        np.testing.assert_array_equal(x.offsets, y.offsets)
    np.testing.assert_array_equal(a.test.targets, b.test.targets)
    np.testing.assert_array_equal(a.valid.users, b.valid.users)
    assert (a.train_timestamps is None) == (b.train_timestamps is None)
    if a.test.target_timestamps is not None:
        np.testing.assert_array_equal(a.test.target_timestamps, b.test.target_timestamps)
        np.testing.assert_array_equal(
            a.test.history_timestamps.values, b.test.history_timestamps.values
        )


def test_split_round_trip(tmp_path: Path) -> None:
    for split in (leave_one_out(_data(True)), tiger_split(_data(False), max_history=3)):
        path = split.save(tmp_path / f"{split.protocol}.npz")
        _equal(split, SequenceSplit.load(path))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_training_and_evaluation_import_no_polars() -> None:
    code = (
        "import sys; import shortlist.train.experiment, shortlist.models, shortlist.eval.protocols, "
        "shortlist.data.loader; sys.exit(1 if 'polars' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0, (
        "a saved split must train without Polars"
    )


def test_training_windows_make_every_event_a_target_once() -> None:
    from shortlist.data.sequences import Jagged, training_windows

    lengths = np.array([0, 1, 2, 5, 6, 7, 13, 30])
    values = np.arange(1, lengths.sum() + 1)  # distinct items: each event identifies itself
    seqs = Jagged.from_lengths(values, lengths)
    times = Jagged.from_lengths(values * 10, lengths)
    max_len = 5
    windows, (wt,), row = training_windows(seqs, max_len, times)
    targets = []
    for i in range(len(windows)):
        w = windows[i]
        assert len(w) <= max_len + 1
        np.testing.assert_array_equal(wt[i], w * 10)  # timestamps cut alike
        src = seqs[row[i]]
        start = int(np.searchsorted(src, w[0])) if len(w) else 0
        np.testing.assert_array_equal(w, src[start : start + len(w)])  # a contiguous slice
        targets.extend(w[1:].tolist())
    expected = np.concatenate([seqs[u][1:] for u in range(len(lengths))]).tolist()
    assert sorted(targets) == sorted(expected)  # every target exactly once
    assert np.bincount(row, minlength=len(lengths)).tolist() == [1, 1, 1, 1, 1, 2, 3, 6]


def test_training_windows_rejects_bad_max_len() -> None:
    import pytest

    from shortlist.data.sequences import Jagged, training_windows

    with pytest.raises(ValueError, match="max_len must be >= 1, got 0"):
        training_windows(Jagged.from_lengths(np.arange(3), np.array([3])), 0)


def test_multi_scale_windows_make_every_event_a_target_once_per_size() -> None:
    import pytest

    from shortlist.data.sequences import Jagged, multi_scale_windows, training_windows

    lengths = np.array([0, 1, 2, 5, 13, 30])
    values = np.arange(1, lengths.sum() + 1)
    seqs = Jagged.from_lengths(values, lengths)
    times = Jagged.from_lengths(values * 10, lengths)
    windows, (wt,), row = multi_scale_windows(seqs, [8, 3], times)
    long, _, long_row = training_windows(seqs, 8)
    short, _, short_row = training_windows(seqs, 3)
    assert len(windows) == len(long) + len(short)
    np.testing.assert_array_equal(row, np.concatenate([long_row, short_row]))
    for i in range(len(windows)):  # the long size's windows first, then the short ones
        ref = long[i] if i < len(long) else short[i - len(long)]
        np.testing.assert_array_equal(windows[i], ref)
        np.testing.assert_array_equal(wt[i], ref * 10)
    targets = sorted(t for i in range(len(windows)) for t in windows[i][1:].tolist())
    expected = np.concatenate([seqs[u][1:] for u in range(len(lengths))]).tolist()
    assert targets == sorted(expected * 2)  # every target once per size
    with pytest.raises(ValueError, match=r"distinct window sizes, at least one; got \[3, 3\]"):
        multi_scale_windows(seqs, [3, 3])
