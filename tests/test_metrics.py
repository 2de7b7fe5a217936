"""Tests of shortlist.eval.metrics: leave-one-out ranking metrics against hand-computed values, and
the target rank with both tie rules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from shortlist.eval.metrics import (
    compute_metrics,
    hit_rate_at_k,
    mrr,
    ndcg_at_k,
    parse_metric,
    rank_of_target,
    recall_at_k,
)
from shortlist.registry import UnknownNameError

INF = float("inf")


# -- metrics from ranks ------------------------------------------------------------------------
def test_metrics_hand_computed():
    ranks = np.array([0, 1, 4, 12])
    assert hit_rate_at_k(ranks, 5) == 0.75
    assert hit_rate_at_k(ranks, 1) == 0.25
    assert hit_rate_at_k(ranks, 4) == 0.5  # rank 4 is the 5th place: not in the top 4
    assert hit_rate_at_k(ranks, 13) == 1.0
    assert recall_at_k(ranks, 5) == 0.75
    assert ndcg_at_k(ranks, 5) == pytest.approx(
        (1 + 1 / math.log2(3) + 1 / math.log2(6)) / 4, abs=1e-15
    )
    assert ndcg_at_k(ranks, 1) == 0.25
    assert ndcg_at_k(ranks, 20) == pytest.approx(
        (1 + 1 / math.log2(3) + 1 / math.log2(6) + 1 / math.log2(14)) / 4, abs=1e-15
    )
    assert mrr(ranks) == pytest.approx((1 + 1 / 2 + 1 / 5 + 1 / 13) / 4, abs=1e-15)


def test_metrics_accept_torch_numpy_and_lists_alike():
    ranks = [3, 0, 7, 2, 9, 0]
    for fn in (lambda r: hit_rate_at_k(r, 3), lambda r: ndcg_at_k(r, 8), mrr):
        expected = fn(np.array(ranks))
        assert fn(torch.tensor(ranks)) == expected
        assert fn(ranks) == expected
        assert fn(np.array(ranks, dtype=np.int32)) == expected
        assert isinstance(expected, float)


def test_metrics_of_no_examples_are_nan():
    assert math.isnan(hit_rate_at_k(np.zeros(0, dtype=np.int64), 10))
    assert math.isnan(ndcg_at_k([], 10))
    assert math.isnan(mrr(torch.zeros(0, dtype=torch.long)))


@pytest.mark.parametrize(
    "ranks", [np.array([[0, 1]]), np.array([-1, 2]), np.array([0.5, 1.0]), np.array(["a"])]
)
def test_metrics_refuse_bad_ranks(ranks):
    with pytest.raises(ValueError, match="ranks"):
        hit_rate_at_k(ranks, 10)


@pytest.mark.parametrize("k", [0, -3, 2.5, True])
def test_metrics_refuse_bad_cutoffs(k):
    with pytest.raises(ValueError, match="'k' parameter of ndcg_at_k"):
        ndcg_at_k(np.array([0]), k)


def test_compute_metrics_and_keys():
    ranks = np.array([0, 1, 4, 12])
    out = compute_metrics(ranks, ["hr@5", "ndcg@5", "recall@1", "mrr"])
    assert list(out) == ["hr@5", "ndcg@5", "recall@1", "mrr"]
    assert out["hr@5"] == 0.75
    assert out["recall@1"] == 0.25
    assert out["ndcg@5"] == ndcg_at_k(ranks, 5)
    assert out["mrr"] == mrr(ranks)
    assert parse_metric("ndcg@200") == ("ndcg", 200)
    assert parse_metric("mrr") == ("mrr", None)


def test_metric_key_errors():
    with pytest.raises(
        UnknownNameError, match=r"Unknown metric 'map'\. Valid names: hr, mrr, ndcg, recall"
    ):
        parse_metric("map@10")
    with pytest.raises(ValueError, match="lower-case"):
        parse_metric("HR@10")
    with pytest.raises(ValueError, match="needs a cut-off"):
        parse_metric("hr")
    with pytest.raises(ValueError, match="needs a cut-off"):
        parse_metric("ndcg@0")
    with pytest.raises(ValueError, match="takes no cut-off"):
        parse_metric("mrr@10")


# -- target ranks ------------------------------------------------------------------------------
def test_rank_of_target_distinct_scores():
    scores = torch.tensor([[-INF, 0.1, 0.9, 0.5, 0.3], [-INF, 0.4, 0.3, 0.2, 0.1]])
    assert rank_of_target(scores, torch.tensor([3, 4])).tolist() == [1, 3]
    assert rank_of_target(scores, torch.tensor([2, 1])).tolist() == [0, 0]
    for ties in ("optimistic", "pessimistic"):  # no ties: both rules agree
        assert rank_of_target(scores, torch.tensor([3, 4]), ties=ties).tolist() == [1, 3]


def test_rank_of_target_ties():
    # item 2 ties item 1 and item 3; item 4 is above all of them
    scores = torch.tensor([[-INF, 0.5, 0.5, 0.5, 0.9, 0.1]])
    assert rank_of_target(scores, torch.tensor([2])).tolist() == [
        1
    ]  # only item 4 is strictly above
    assert rank_of_target(scores, torch.tensor([2]), ties="pessimistic").tolist() == [
        3
    ]  # items 1, 3, 4
    assert rank_of_target(scores, torch.tensor([4]), ties="pessimistic").tolist() == [0]
    assert rank_of_target(scores, torch.tensor([5]), ties="pessimistic").tolist() == [4]


def test_excluded_items_never_outrank_the_target():
    # the best items are excluded (-inf): the target moves to the top
    scores = torch.tensor([[-INF, -INF, -INF, 0.2, 0.1], [-INF, -INF, 0.0, -5.0, -INF]])
    for ties in ("optimistic", "pessimistic"):
        assert rank_of_target(scores, torch.tensor([3, 3]), ties=ties).tolist() == [0, 1]
        assert rank_of_target(scores, torch.tensor([4, 2]), ties=ties).tolist() == [1, 0]


def test_an_excluded_target_is_a_miss_at_every_cutoff():
    # 4 items, the target itself is excluded: rank N = 4 whatever the rule
    scores = torch.tensor([[-INF, -INF, -INF, -INF, 0.3]])
    for ties in ("optimistic", "pessimistic"):
        assert rank_of_target(scores, torch.tensor([2]), ties=ties).tolist() == [4]
    assert hit_rate_at_k([4], 4) == 0.0


def test_rank_of_target_numpy_in_numpy_out():
    scores = np.array([[-np.inf, 1.0, 3.0, 2.0]], dtype=np.float32)
    ranks = rank_of_target(scores, np.array([1]))
    assert isinstance(ranks, np.ndarray) and ranks.tolist() == [2]


def test_rank_of_target_errors():
    scores = torch.zeros(2, 5)
    scores[:, 0] = -INF
    with pytest.raises(ValueError, match=r"1\.\.4 .* Got target 5"):
        rank_of_target(scores, torch.tensor([1, 5]))
    with pytest.raises(ValueError, match="Got target 0"):
        rank_of_target(scores, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"\(B, N\+1\) and targets \(B,\)"):
        rank_of_target(scores, torch.tensor([1, 2, 3]))
    with pytest.raises(TypeError, match="integer targets"):
        rank_of_target(scores, torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="'ties' parameter"):
        rank_of_target(scores, torch.tensor([1, 2]), ties="random")
    scores[1, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN in row 1"):
        rank_of_target(scores, torch.tensor([1, 3]))
    assert rank_of_target(scores, torch.tensor([1, 2])).tolist() == [
        0,
        0,
    ]  # a NaN non-target never outranks


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 6),
    st.integers(1, 12),
    st.integers(0, 2**31 - 1),
    st.sampled_from([3, 1000]),
)
def test_rank_of_target_brackets_every_tie_order(batch, n_items, seed, levels):
    """Optimistic <= the target's place in any sorted order <= pessimistic, and each rule equals
    its count written out per row; with `levels=3` scores tie often."""
    g = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, levels, (batch, n_items + 1), generator=g).float()
    excluded = torch.rand(batch, n_items + 1, generator=g) < 0.2
    scores[excluded] = -INF
    scores[:, 0] = -INF
    targets = torch.randint(1, n_items + 1, (batch,), generator=g)
    opt = rank_of_target(scores, targets)
    pes = rank_of_target(scores, targets, ties="pessimistic")
    for b in range(batch):
        row, t = scores[b].tolist(), int(targets[b])
        if row[t] == -INF:
            assert opt[b] == pes[b] == n_items
            continue
        assert opt[b] == sum(s > row[t] for s in row)
        assert pes[b] == sum(s >= row[t] for i, s in enumerate(row) if i != t)
        for order in (
            torch.argsort(-scores[b], stable=True),
            torch.topk(scores[b], n_items + 1).indices,
        ):
            place = order.tolist().index(t)
            assert opt[b] <= place <= pes[b]
