"""Tests of shortlist.data.jagged: pad, to_jagged, jagged_from_padded and take against
plain-Python references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seq_helpers import item_rows, jagged_of, ref_pad, rows_of, sides
from shortlist.data.jagged import jagged_from_padded, pad, take, to_jagged

# -- helpers -----------------------------------------------------------------------------------


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
