"""Protocols on hand-computed examples."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shortlist.data.build import build_dataset
from shortlist.data.schema import ITEM, InteractionData
from shortlist.data.splits import (
    leave_one_out,
    random_split,
    segment_indices,
    split,
    temporal_split,
    tiger_split,
    training_interactions,
)


def _data(seqs: dict[str, list[str]], with_time: bool = True) -> InteractionData:
    users, items, times = [], [], []
    t = 0
    for user, seq in seqs.items():
        for item in seq:
            users.append(user)
            items.append(item)
            times.append(t)
            t += 10
    frame = pl.DataFrame(
        {"user_id": users, "item_id": items, **({"timestamp": times} if with_time else {})}
    )
    return build_dataset("toy", frame, order="time" if with_time else "sequence")


@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 6)), max_size=12))
@settings(max_examples=60, deadline=None)
def test_segment_indices_matches_reference(segments: list[tuple[int, int]]) -> None:
    starts = np.array([s for s, _ in segments], dtype=np.int64)
    ends = starts + np.array([n for _, n in segments], dtype=np.int64)
    expected = [i for s, e in zip(starts, ends, strict=True) for i in range(s, e)]
    assert segment_indices(starts, ends).tolist() == expected


def test_leave_one_out_hand_computed() -> None:
    # items are numbered by first appearance: a=1, b=2, c=3, d=4, e=5, f=6
    data = _data({"u1": ["a", "b", "c", "d", "e"], "u2": ["c", "f"], "u3": ["f", "a", "b"]})
    s = leave_one_out(data)
    assert s.train_users.tolist() == [0, 1, 2]
    assert [s.train[i].tolist() for i in range(3)] == [[1, 2, 3], [3, 6], [6]]
    # u2 has 2 events (< 3): no evaluation example
    assert s.valid.users.tolist() == [0, 2] and s.test.users.tolist() == [0, 2]
    assert s.valid.targets.tolist() == [4, 1] and s.test.targets.tolist() == [5, 2]
    assert [s.valid.history[i].tolist() for i in range(2)] == [[1, 2, 3], [6]]
    assert [s.test.history[i].tolist() for i in range(2)] == [[1, 2, 3, 4], [6, 1]]
    assert s.test.target_timestamps.tolist() == [40, 90]
    assert s.test.history_timestamps[0].tolist() == [0, 10, 20, 30]


def test_tiger_caps_history_at_20() -> None:
    seq = [f"i{k}" for k in range(30)]
    s = tiger_split(_data({"u": seq}, with_time=False))
    assert s.protocol == "tiger" and s.max_history == 20
    assert s.test.history[0].tolist() == list(
        range(10, 30)
    )  # items 10..29 (indices 10..29), target 30
    assert s.test.targets.tolist() == [30]
    assert s.valid.history[0].tolist() == list(range(9, 29))
    assert len(s.train.values) == 28  # training sequences are not capped


def test_long_keeps_whole_histories() -> None:
    """The 'long' split is leave-one-out under its own name, nothing capped; the registry (what
    make_split uses for a config's protocol) gives it by name."""
    seq = [f"i{k}" for k in range(30)]
    s = split(_data({"u": seq}, with_time=False), "long")
    assert s.protocol == "long" and s.max_history is None
    assert s.test.history[0].tolist() == list(range(1, 30)) and s.test.targets.tolist() == [30]
    assert s.valid.history[0].tolist() == list(range(1, 29))


def test_sequential_protocols_refuse_unordered_data() -> None:
    frame = pl.DataFrame({"user_id": [1, 1, 1], "item_id": [1, 2, 3]})
    data = build_dataset("unordered", frame, order="none")
    with pytest.raises(ValueError, match="needs each user's events in time order"):
        split(data, "tiger")


def test_random_split_partitions_rows() -> None:
    rng = np.random.default_rng(0)
    frame = pl.DataFrame(
        {"user_id": rng.integers(0, 50, 1000), "item_id": rng.integers(0, 80, 1000)}
    )
    data = build_dataset("r", frame, order="sequence")
    s = random_split(data, seed=3)
    assert (s.train.height, s.valid.height, s.test.height) == (800, 100, 100)
    key = lambda f: f.with_row_index("i")  # noqa: E731
    assert key(pl.concat([s.train, s.valid, s.test])).height == 1000
    again = random_split(data, seed=3)
    assert again.test.equals(s.test)
    assert not random_split(data, seed=4).test.equals(s.test)
    with pytest.raises(ValueError, match="three non-negative fractions summing to 1"):
        random_split(data, ratios=(0.5, 0.2, 0.2))


def test_temporal_split_has_no_leakage() -> None:
    data = _data({"u1": list("abcdefgh"), "u2": list("bcdefghi")})
    s = temporal_split(data, ratios=(0.5, 0.25, 0.25))
    assert (s.train.height, s.valid.height, s.test.height) == (8, 4, 4)
    assert (
        s.train["timestamp"].max()
        < s.valid["timestamp"].min()
        <= s.valid["timestamp"].max()
        < s.test["timestamp"].min()
    )
    c = temporal_split(data, cutoffs=(50, 100))
    assert c.train["timestamp"].max() < 50 and c.test["timestamp"].min() >= 100
    with pytest.raises(ValueError, match="needs timestamps"):
        temporal_split(_data({"u": ["a", "b"]}, with_time=False))


def test_unknown_protocol() -> None:
    with pytest.raises(
        ValueError,
        match=r"Unknown protocol 'loo'\. Valid names: hstu, leave_one_out, long, random, temporal, tiger",
    ):
        split(_data({"u": ["a"]}), "loo")


def test_training_interactions_drops_each_users_last_two_events() -> None:
    # a=1, b=2, c=3, d=4, e=5, f=6; u2 has 2 events: never evaluated, keeps both
    data = _data({"u1": ["a", "b", "c", "d", "e"], "u2": ["c", "f"], "u3": ["f", "a", "b"]})
    train = training_interactions(data)
    assert train.order == "sequence" and train.num_items == data.num_items
    offsets = train.offsets()
    items = train.interactions[ITEM].to_numpy()
    per_user = [items[offsets[u] : offsets[u + 1]].tolist() for u in range(len(offsets) - 1)]
    assert [s for s in per_user if s] == [[1, 2, 3], [3, 6], [6]]
