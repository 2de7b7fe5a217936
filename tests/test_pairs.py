"""Tests of shortlist.data.pairs: Swing against its reference and hand-computed values, caps,
user-to-item triggers, item-to-item pairs, and the Pairs container (holdout, Parquet round trip)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shortlist.data.build import build_dataset
from shortlist.data.pairs import (
    ItemNeighbours,
    Pairs,
    SwingConfig,
    _hash64,
    _hash64_py,
    _recent_sets,
    _row_users,
    item_to_item_pairs,
    swing,
    swing_reference,
    user_to_item_pairs,
)
from shortlist.data.schema import InteractionData


def make_data(sequences: list[list[int]], name: str = "toy") -> InteractionData:
    """A dataset whose user u has the raw item IDs ``sequences[u]`` in order.

    Raw item IDs are re-indexed by first appearance, so tests pass sequences whose items first
    appear in the order 1, 2, 3, ... to keep indices equal to raw IDs.
    """
    rows = [(u, i) for u, seq in enumerate(sequences) for i in seq]
    frame = pl.DataFrame({"user_id": [r[0] for r in rows], "item_id": [r[1] for r in rows]})
    data = build_dataset(name, frame, order="sequence")
    assert data.item_ids(np.arange(1, data.num_items + 1)).tolist() == list(
        range(1, data.num_items + 1)
    )
    return data


def dense(neighbours: ItemNeighbours) -> np.ndarray:
    return neighbours.to_sparse().toarray().astype(np.float64)


# Hand example (alpha = 1):
#   u0: {1, 2, 3, 4}   u1: {1, 2}   u2: {1, 2, 3}   u3: {3, 4}
#   U_1 = {0, 1, 2}, U_2 = {0, 1, 2}, U_3 = {0, 2, 3}, U_4 = {0, 3}
#   |I_u ∩ I_v|: (0,1) = 2, (0,2) = 3, (0,3) = 2, (1,2) = 2, (1,3) = 0, (2,3) = 1
HAND = [[1, 2, 3, 4], [1, 2], [1, 2, 3], [3, 4]]


def test_swing_hand_example_unweighted() -> None:
    # Each unordered user pair counts twice (ordered pairs u != v):
    #   sim(1,2): common {0,1,2}: 2 * (1/(1+2) + 1/(1+3) + 1/(1+2)) = 11/6
    #   sim(1,3) = sim(2,3): common {0,2}: 2 * 1/(1+3) = 1/2
    #   sim(3,4): common {0,3}: 2 * 1/(1+2) = 2/3
    #   sim(1,4), sim(2,4): a single common user (u0): 0
    data = make_data(HAND)
    cfg = SwingConfig(
        alpha=1.0, user_weighting=False, max_users_per_item=None, max_items_per_user=None, topk=3
    )
    nb = swing(data, cfg)
    expected = np.zeros((5, 5))
    for (i, j), s in {(1, 2): 11 / 6, (1, 3): 0.5, (2, 3): 0.5, (3, 4): 2 / 3}.items():
        expected[i, j] = expected[j, i] = s
    np.testing.assert_allclose(dense(nb), expected, rtol=1e-6)
    # ordered by score, ties (item 3: items 1 and 2 at 1/2) by item index; 0 pads empty slots
    assert nb.items.tolist() == [[0, 0, 0], [2, 3, 0], [1, 3, 0], [4, 1, 2], [3, 0, 0]]
    np.testing.assert_allclose(nb.scores[3], [2 / 3, 0.5, 0.5], rtol=1e-6)
    assert (
        nb.items.dtype == np.int32 and nb.scores.dtype == np.float32 and nb.scores.shape == (5, 3)
    )


def test_swing_hand_example_weighted() -> None:
    # beta = 0: w_u = |I_u| ** -0.5 with |I| = 4, 2, 3, 2
    w0, w1, w2, w3 = 4**-0.5, 2**-0.5, 3**-0.5, 2**-0.5
    s12 = 2 * (w0 * w1 / 3 + w0 * w2 / 4 + w1 * w2 / 3)  # = 0.652206...
    s13 = 2 * w0 * w2 / 4  # = 0.144338...
    s34 = 2 * w0 * w3 / 3  # = 0.235702...
    assert math.isclose(s12, 0.652206, rel_tol=1e-5)
    data = make_data(HAND)
    cfg = SwingConfig(alpha=1.0, beta=0.0, max_users_per_item=None, max_items_per_user=None, topk=4)
    got = dense(swing(data, cfg))
    expected = np.zeros((5, 5))
    for (i, j), s in {(1, 2): s12, (1, 3): s13, (2, 3): s13, (3, 4): s34}.items():
        expected[i, j] = expected[j, i] = s
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    np.testing.assert_allclose(dense(swing_reference(data, cfg)), expected, rtol=1e-6)


sequences_strategy = st.lists(
    st.lists(st.integers(1, 7), min_size=1, max_size=9), min_size=2, max_size=8
).map(lambda seqs: _renumber(seqs))


def _renumber(seqs: list[list[int]]) -> list[list[int]]:
    """Relabel items by first appearance so raw IDs equal the dataset's indices."""
    mapping: dict[int, int] = {}
    return [[mapping.setdefault(i, len(mapping) + 1) for i in seq] for seq in seqs]


config_strategy = st.builds(
    SwingConfig,
    alpha=st.sampled_from([0.0, 0.5, 1.0, 3.0]),
    beta=st.sampled_from([0.0, 1.0, 5.0]),
    user_weighting=st.booleans(),
    max_users_per_item=st.sampled_from([None, 2, 3, 5]),
    max_items_per_user=st.sampled_from([None, 2, 3, 5]),
    topk=st.just(10),
    seed=st.integers(0, 5),
)


@settings(max_examples=60, deadline=None)
@given(seqs=sequences_strategy, cfg=config_strategy)
def test_swing_matches_reference(seqs: list[list[int]], cfg: SwingConfig) -> None:
    data = make_data(seqs)
    fast, ref = swing(data, cfg), swing_reference(data, cfg)
    np.testing.assert_allclose(dense(fast), dense(ref), rtol=1e-5, atol=1e-7)
    # same neighbour lists wherever the reference has no near-tie
    assert ((fast.items > 0) == (ref.items > 0)).all()


@settings(max_examples=25, deadline=None)
@given(seqs=sequences_strategy)
def test_swing_is_symmetric_and_excludes_self(seqs: list[list[int]]) -> None:
    data = make_data(seqs)
    cfg = SwingConfig(max_users_per_item=None, max_items_per_user=None, topk=10)
    m = dense(swing(data, cfg))
    np.testing.assert_allclose(m, m.T, rtol=1e-5, atol=1e-7)
    assert (np.diag(m) == 0).all() and (m[0] == 0).all()


def test_swing_topk_truncates_to_best() -> None:
    data = make_data(HAND)
    full = swing(data, SwingConfig(user_weighting=False, max_users_per_item=None, topk=4))
    top1 = swing(data, SwingConfig(user_weighting=False, max_users_per_item=None, topk=1))
    assert top1.items[:, 0].tolist() == full.items[:, 0].tolist() == [0, 2, 1, 4, 3]


def test_repeated_events_count_once() -> None:
    cfg = SwingConfig(max_users_per_item=None, max_items_per_user=None, topk=4)
    plain = swing(make_data(HAND), cfg)
    repeated = swing(make_data([[1, 2, 1, 3, 4, 4], [1, 2, 2], [1, 2, 3, 1], [3, 4, 3]]), cfg)
    np.testing.assert_allclose(dense(plain), dense(repeated), rtol=1e-6)


def test_hash_twins_agree() -> None:
    users = np.array([0, 1, 7, 123456, 2**31 - 1])
    items = np.array([1, 2, 3, 99, 2**30])
    for seed in (0, 1, 2**62):
        assert _hash64(seed, users, items).tolist() == [
            _hash64_py(seed, int(u), int(i)) for u, i in zip(users, items, strict=True)
        ]


def by_raw_id(data: InteractionData, neighbours: ItemNeighbours) -> dict[tuple[int, int], float]:
    """{(raw item i, raw item j): score} for every listed neighbour."""
    m = neighbours.to_sparse().tocoo()
    raw_i, raw_j = data.item_ids(m.row).tolist(), data.item_ids(m.col).tolist()
    return {(a, b): float(s) for a, b, s in zip(raw_i, raw_j, m.data, strict=True)}


def test_max_items_per_user_keeps_most_recent_distinct() -> None:
    # user 0: 1 2 3 1 -> distinct items, most recent first: 1 (row 3), 3, 2; a cap of 2 keeps {1, 3}
    data = make_data([[1, 2, 3, 1], [2, 4]])
    users, items = _recent_sets(data, SwingConfig(max_items_per_user=2))
    assert sorted(zip(users.tolist(), items.tolist(), strict=True)) == [
        (0, 1),
        (0, 3),
        (1, 2),
        (1, 4),
    ]


def test_max_items_per_user_equals_truncated_histories() -> None:
    # distinct items per user, so the cap keeps exactly each user's last 2 items
    seqs = [[1, 2, 3, 4], [1, 2], [1, 2, 3], [3, 4], [5, 1, 3], [2, 5, 4, 1, 3]]
    cap = SwingConfig(max_items_per_user=2, max_users_per_item=None, topk=5)
    nocap = SwingConfig(max_items_per_user=None, max_users_per_item=None, topk=5)
    full = make_data(seqs)
    truncated = build_dataset(
        "truncated",
        pl.DataFrame(
            {
                "user_id": [u for u, s in enumerate(seqs) for _ in s[-2:]],
                "item_id": [i for s in seqs for i in s[-2:]],
            }
        ),
        order="sequence",
    )
    capped = by_raw_id(full, swing(full, cap))
    assert capped == pytest.approx(by_raw_id(truncated, swing(truncated, nocap)), rel=1e-6)
    assert capped != pytest.approx(by_raw_id(full, swing(full, nocap)), rel=1e-6)  # the cap bites


def test_max_users_per_item_samples_row_users() -> None:
    rng = np.random.default_rng(0)
    # 30 users with 3 of 8 items each, item 8 rare (2 users): popular items have > 5 users
    seqs = _renumber([rng.choice(7, size=3, replace=False).tolist() for _ in range(28)])
    seqs += [[1, 8], [2, 8]]
    data = make_data(seqs)
    cfg = SwingConfig(max_users_per_item=5, max_items_per_user=None, seed=3, topk=8)
    users, items = _row_users(*_recent_sets(data, cfg), cfg)
    per_item = np.bincount(items, minlength=data.num_items + 1)
    assert per_item[1:8].tolist() == [5] * 7 and per_item[8] == 2
    # S_i: the users of i with the smallest hash keys
    for i in range(1, data.num_items + 1):
        everyone = [u for u, seq in enumerate(seqs) if i in seq]
        best = sorted(everyone, key=lambda u, i=i: (_hash64_py(3, u, i), u))[:5]
        assert sorted(users[items == i].tolist()) == sorted(best)
    capped, exact = (
        dense(swing(data, cfg)),
        dense(swing(data, SwingConfig(max_users_per_item=None, topk=8))),
    )
    # the cap only picks the user pairs of a row: a rare item's row is unchanged, popular ones shrink
    np.testing.assert_allclose(capped[8], exact[8], rtol=1e-6)
    assert (capped[1:8].sum(axis=1) < exact[1:8].sum(axis=1)).all()
    np.testing.assert_allclose(capped, dense(swing_reference(data, cfg)), rtol=1e-5)
    # deterministic for a seed, different for another
    np.testing.assert_array_equal(dense(swing(data, cfg)), capped)
    other = _row_users(*_recent_sets(data, cfg), SwingConfig(max_users_per_item=5, seed=4))
    assert set(zip(*other, strict=True)) != set(zip(users, items, strict=True))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"alpha": -1.0},
            "The 'alpha' parameter of SwingConfig must be a finite float >= 0. Got -1.0 instead.",
        ),
        (
            {"beta": float("nan")},
            "The 'beta' parameter of SwingConfig must be a finite float >= 0. Got nan instead.",
        ),
        (
            {"user_weighting": 1},
            "The 'user_weighting' parameter of SwingConfig must be a bool. Got 1 instead.",
        ),
        (
            {"max_users_per_item": 1},
            "The 'max_users_per_item' parameter of SwingConfig must be None or an int >= 2.",
        ),
        (
            {"max_items_per_user": 2.5},
            "The 'max_items_per_user' parameter of SwingConfig must be None or an int >= 2.",
        ),
        ({"topk": 0}, "The 'topk' parameter of SwingConfig must be an int >= 1. Got 0 instead."),
        (
            {"topk": True},
            "The 'topk' parameter of SwingConfig must be an int >= 1. Got True instead.",
        ),
        (
            {"seed": -1},
            "The 'seed' parameter of SwingConfig must be an int in [0, 2**63). Got -1 instead.",
        ),
    ],
)
def test_swing_config_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        SwingConfig(**kwargs)


# -- item-to-item pairs ---------------------------------------------------------------------------
def test_item_to_item_pairs() -> None:
    nb = swing(make_data(HAND), SwingConfig(user_weighting=False, max_users_per_item=None, topk=3))
    # lists: 1: [2, 3]  2: [1, 3]  3: [4, 1, 2]  4: [3]  (scores 11/6, 1/2, 2/3 as in the hand example)
    p = item_to_item_pairs(nb)
    assert list(zip(p.trigger.tolist(), p.target.tolist(), strict=True)) == [
        (1, 2), (1, 3), (2, 1), (2, 3), (3, 4), (3, 1), (3, 2), (4, 3)
    ]  # fmt: skip
    np.testing.assert_allclose(
        p.weight, [11 / 6, 0.5, 11 / 6, 0.5, 2 / 3, 0.5, 0.5, 2 / 3], rtol=1e-6
    )
    assert p.source == "i2i_swing"
    top1 = item_to_item_pairs(nb, per_item=1)
    assert top1.trigger.tolist() == [1, 2, 3, 4] and top1.target.tolist() == [2, 1, 4, 3]
    strong = item_to_item_pairs(nb, min_score=0.6)
    assert set(zip(strong.trigger.tolist(), strong.target.tolist(), strict=True)) == {
        (1, 2),
        (2, 1),
        (3, 4),
        (4, 3),
    }
    once = item_to_item_pairs(nb, symmetric_once=True)
    assert list(zip(once.trigger.tolist(), once.target.tolist(), strict=True)) == [
        (1, 2),
        (1, 3),
        (2, 3),
        (3, 4),
    ]
    with pytest.raises(ValueError, match="'per_item' parameter of item_to_item_pairs"):
        item_to_item_pairs(nb, per_item=0)


# -- user-to-item pairs ---------------------------------------------------------------------------
def pair_list(p: Pairs) -> list[tuple[int, int]]:
    return list(zip(p.trigger.tolist(), p.target.tolist(), strict=True))


# items 1 and 3 point along x, 2 and 4 along y (scaled rows: cosine ignores the norm)
EMB = np.array([[0, 0], [1, 0], [0, 1], [3, 0.3], [0.2, 2]], dtype=np.float32)


def test_user_to_item_with_embeddings() -> None:
    data = make_data([[1, 2, 3, 4], [2, 1]])
    p = user_to_item_pairs(data, item_embeddings=EMB)
    # target 2 <- only 1; target 3 <- argmax cos over (2, 1) = 1; target 4 <- over (3, 2, 1) = 2;
    # user 1: target 1 <- 2
    assert pair_list(p) == [(1, 2), (1, 3), (2, 4), (2, 1)]
    assert p.source == "u2i_embedding" and (p.weight == 1).all()
    # window = 1: only the previous item is a candidate
    assert pair_list(user_to_item_pairs(data, item_embeddings=EMB, window=1)) == [
        (1, 2),
        (2, 3),
        (3, 4),
        (2, 1),
    ]
    # window = 2: target 4 chooses among (3, 2)
    assert pair_list(user_to_item_pairs(data, item_embeddings=EMB, window=2))[2] == (2, 4)
    # embeddings win over neighbours when both are given
    nb = swing(data, SwingConfig(topk=2))
    assert pair_list(user_to_item_pairs(data, item_embeddings=EMB, neighbours=nb)) == pair_list(p)


def test_user_to_item_skips_target_and_prefers_recent_ties() -> None:
    # user 0: 1 2 1 -> target 1 at t=2 may not pick the earlier 1, so 2; user 1: 3 3 -> no pair;
    # user 2: 1 3 4 2 -> 3 <- 1, 4 <- 3 (cos 0.20 vs 0.10 for 1), 2 <- 4 (both along y)
    data = make_data([[1, 2, 1], [3, 3], [1, 3, 4, 2]])
    emb = EMB.copy()
    got = pair_list(user_to_item_pairs(data, item_embeddings=emb))
    assert got == [(1, 2), (2, 1), (1, 3), (3, 4), (4, 2)]
    # all embeddings equal -> every candidate ties -> the most recent one
    flat = np.ones_like(emb)
    assert pair_list(user_to_item_pairs(data, item_embeddings=flat)) == [
        (1, 2),
        (2, 1),
        (1, 3),
        (3, 4),
        (4, 2),
    ]
    target_first = make_data([[1, 2, 3, 1]])
    assert pair_list(user_to_item_pairs(target_first, item_embeddings=flat[:4])) == [
        (1, 2),
        (2, 3),
        (3, 1),
    ]


def test_user_to_item_with_swing_neighbours_and_fallback() -> None:
    data = make_data([[1, 2, 3, 4, 5]])
    items = np.zeros((6, 2), np.int32)
    scores = np.zeros((6, 2), np.float32)
    items[3], scores[3] = [1, 0], [0.5, 0]  # 3 ~ 1
    items[2], scores[2] = (
        [4, 0],
        [0.2, 0],
    )  # 2 ~ 4, listed only in 2's row (the lookup is symmetric)
    items[5], scores[5] = [1, 2], [0.9, 0.3]  # 5 ~ 1 best, then 2
    nb = ItemNeighbours(items, scores)
    p = user_to_item_pairs(data, neighbours=nb)
    # target 2 <- 1 (no neighbour: most recent); 3 <- 1 (neighbour, not the most recent 2);
    # 4 <- 2 (found through 2's list); 5 <- 1 (score 0.9 beats 0.3)
    assert pair_list(p) == [(1, 2), (1, 3), (2, 4), (1, 5)]
    assert p.source == "u2i_swing"
    recent = user_to_item_pairs(data)
    assert pair_list(recent) == [(1, 2), (2, 3), (3, 4), (4, 5)] and recent.source == "u2i_recent"


def _u2i_loop(seqs: list[list[int]], emb: np.ndarray, window: int) -> list[tuple[int, int]]:
    unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    out = []
    for seq in seqs:
        for t in range(1, len(seq)):
            best, best_sim = None, -np.inf
            for c in reversed(
                seq[max(0, t - window) : t]
            ):  # most recent first, strict > keeps it on ties
                s = float(unit[c] @ unit[seq[t]])
                if c != seq[t] and s > best_sim:
                    best, best_sim = c, s
            if best is not None:
                out.append((best, seq[t]))
    return out


@settings(max_examples=30, deadline=None)
@given(seqs=sequences_strategy, window=st.integers(1, 4), seed=st.integers(0, 100))
def test_user_to_item_blocks_match_loop(seqs: list[list[int]], window: int, seed: int) -> None:
    data = make_data(seqs)
    # distinct random directions (no exact ties) so the loop and the vectorized argmax agree
    emb = np.random.default_rng(seed).normal(size=(data.num_items + 1, 3)).astype(np.float32)
    expected = _u2i_loop(seqs, emb.astype(np.float64), window)
    assert pair_list(user_to_item_pairs(data, item_embeddings=emb, window=window)) == expected
    assert (
        pair_list(user_to_item_pairs(data, item_embeddings=emb, window=window, block_bytes=1))
        == expected
    )


def test_user_to_item_validation() -> None:
    data = make_data([[1, 2, 3]])
    with pytest.raises(
        ValueError, match=re.escape("item_embeddings must have shape (N+1, D) = (4, D)")
    ):
        user_to_item_pairs(data, item_embeddings=np.zeros((3, 2)))
    with pytest.raises(
        ValueError, match="The 'window' parameter of user_to_item_pairs must be an int >= 1"
    ):
        user_to_item_pairs(data, window=0)


# -- Pairs ----------------------------------------------------------------------------------------
def some_pairs(n: int = 100) -> Pairs:
    rng = np.random.default_rng(0)
    trigger = np.arange(1, n + 1)
    return Pairs(trigger, rng.integers(1, 50, n), rng.random(n).astype(np.float32), "u2i_recent")


def test_holdout_is_a_disjoint_partition() -> None:
    p = some_pairs()
    train, test = p.holdout(0.2, seed=1)
    assert len(test) == 20 and len(train) == 80
    assert set(train.trigger.tolist()).isdisjoint(
        test.trigger.tolist()
    )  # triggers are unique row ids
    assert sorted(train.trigger.tolist() + test.trigger.tolist()) == p.trigger.tolist()
    assert (np.diff(train.trigger) > 0).all()  # original order kept
    again, _ = p.holdout(0.2, seed=1)
    other, _ = p.holdout(0.2, seed=2)
    np.testing.assert_array_equal(again.trigger, train.trigger)
    assert not np.array_equal(other.trigger, train.trigger)
    for row in range(len(test)):
        j = int(test.trigger[row]) - 1
        assert test.target[row] == p.target[j] and test.weight[row] == p.weight[j]
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(
            ValueError,
            match=r"The 'fraction' parameter of Pairs.holdout must be a float in \(0, 1\)",
        ):
            p.holdout(bad)


def test_deduplicate_and_concatenate() -> None:
    a = Pairs(np.array([1, 2, 1]), np.array([2, 3, 2]), np.array([1.0, 1.0, 2.0]), "u2i_recent")
    b = Pairs(np.array([4]), np.array([1]), np.array([0.5]), "i2i_swing")
    d = a.deduplicate()
    assert pair_list(d) == [(1, 2), (2, 3)] and d.weight.tolist() == [3.0, 1.0]
    c = Pairs.concatenate([a, b, a])
    assert len(c) == 7 and c.source == "u2i_recent+i2i_swing"


def test_pairs_validation() -> None:
    with pytest.raises(ValueError, match="one \\(P,\\) shape"):
        Pairs(np.array([1, 2]), np.array([1]), np.array([1.0, 1.0]), "x")
    with pytest.raises(ValueError, match=r"item indices in 1\.\.N"):
        Pairs(np.array([0]), np.array([1]), np.array([1.0]), "x")
    with pytest.raises(ValueError, match="weight must be finite"):
        Pairs(np.array([1]), np.array([1]), np.array([-1.0]), "x")


def test_save_load_round_trip(tmp_path: Path) -> None:
    p = some_pairs()
    path = tmp_path / "pairs.parquet"
    p.save(path)
    p.deduplicate().save(path)  # overwrite in place
    q = Pairs.load(path)
    d = p.deduplicate()
    np.testing.assert_array_equal(q.trigger, d.trigger)
    np.testing.assert_array_equal(q.target, d.target)
    np.testing.assert_array_equal(q.weight, d.weight)
    assert q.source == "u2i_recent" and q.trigger.dtype == np.int32 and q.weight.dtype == np.float32
    assert [f.name for f in tmp_path.iterdir()] == ["pairs.parquet"]  # no temp file left behind
    empty = Pairs(
        np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32), "i2i_swing"
    )
    assert len(Pairs.load(empty.save(tmp_path / "empty.parquet"))) == 0
    pl.DataFrame({"trigger": [1], "weight": [1.0]}).write_parquet(tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match=r"bad.parquet: missing column 'target'"):
        Pairs.load(tmp_path / "bad.parquet")
