"""Tests of shortlist.data.negatives: negatives in range and never positive (per position, per
row, per batch), the exact fallback, determinism and popularity frequencies."""

from __future__ import annotations

import numpy as np
import pytest

from seq_helpers import jagged_of, random_jagged
from shortlist.data import negatives
from shortlist.data.batches import build_jagged_sequence_batch, build_sequence_batch
from shortlist.data.negatives import NegativeSampler


# -- helpers -----------------------------------------------------------------------------------
# -- negative sampling -------------------------------------------------------------------------
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


@pytest.mark.parametrize("lookup", ["table", "sorted"])
def test_row_and_batch_negatives(lookup, monkeypatch):
    if lookup == "sorted":  # the binary-search path used for large batch x catalogue sizes
        monkeypatch.setattr(negatives, "_MAX_TABLE_CELLS", 0)
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


@pytest.mark.parametrize("lookup", ["table", "sorted"])
def test_row_negatives_fail_clearly_when_row_covers_catalogue(lookup, monkeypatch):
    if lookup == "sorted":
        monkeypatch.setattr(negatives, "_MAX_TABLE_CELLS", 0)
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
