"""Long-history synthetic data: planted long-range interests are where the ground truth says,
determinism by seed, streaming == in memory, evaluation examples."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from shortlist.data.synthetic import (
    EVENT_BURST,
    EVENT_ORDINARY,
    EVENT_RETURN,
    LONG_BLOCK_USERS,
    LongHistoryConfig,
    generate_long_histories,
    iter_long_history_blocks,
    long_range_examples,
)
from shortlist.eval.protocols import history_lengths

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

TINY = LongHistoryConfig(
    n_users=3, n_items=60, n_topics=6, min_length=60, max_length=60, planted_burst=3,
    planted_gap=20, planted_return=2, planted_fraction=1.0, seed=1,
)  # fmt: skip


def test_tiny_planted_structure_is_hand_checkable() -> None:
    data = generate_long_histories(TINY)
    assert data.sequences.lengths.tolist() == [60, 60, 60]
    for u in range(3):
        items = data.sequences[u]
        kind = data.kind[data.sequences.offsets[u] : data.sequences.offsets[u + 1]]
        topics = data.item_topic[items]
        p, at, back = data.planted_topic[u], data.planted_at[u], data.return_at[u]
        assert 0 <= p < TINY.n_topics and back == at + 3 + 20
        # kind: ordinary everywhere except 3 burst events at `at` and 2 return events at `back`
        expected = np.zeros(60, dtype=np.int8)
        expected[at : at + 3] = EVENT_BURST
        expected[back : back + 2] = EVENT_RETURN
        assert np.array_equal(kind, expected)
        assert (topics[at : at + 3] == p).all() and (topics[back : back + 2] == p).all()
        assert not (topics[at + 3 : back] == p).any()  # absent for the whole gap
    assert (data.item_topic[1:] >= 0).all() and data.item_topic[0] == -1


def test_planted_topic_is_rare_outside_its_bursts() -> None:
    cfg = LongHistoryConfig(
        n_users=40, n_items=500, n_topics=20, min_length=2_000, max_length=4_000,
        planted_gap=1_000, planted_burst=10, planted_return=3, planted_fraction=0.5, seed=3,
    )  # fmt: skip
    data = generate_long_histories(cfg)
    lengths = data.sequences.lengths
    assert (lengths >= 2_000).all() and (lengths <= 4_000).all()
    planted = np.flatnonzero(data.planted_topic >= 0)
    assert 10 <= len(planted) <= 30
    for u in planted:
        topics = data.item_topic[data.sequences[u]]
        kind = data.kind[data.sequences.offsets[u] : data.sequences.offsets[u + 1]]
        on_p = topics == data.planted_topic[u]
        # outside its bursts, the planted topic only appears by exploration (10% spread over 20 topics)
        assert on_p[kind == EVENT_ORDINARY].mean() < 0.03
        assert on_p[kind != EVENT_ORDINARY].all()
    # users without a planted interest have no burst or return events
    others = np.flatnonzero(data.planted_topic < 0)
    for u in others:
        assert (data.kind[data.sequences.offsets[u] : data.sequences.offsets[u + 1]] == 0).all()
        assert data.planted_at[u] == data.return_at[u] == -1


def test_deterministic_by_seed_and_streaming_equals_in_memory() -> None:
    cfg = LongHistoryConfig(
        n_users=LONG_BLOCK_USERS + 10, n_items=100, n_topics=8, min_length=50, max_length=400,
        planted_gap=30, planted_burst=4, planted_return=2, seed=5,
    )  # fmt: skip
    a, b = generate_long_histories(cfg), generate_long_histories(cfg)
    for name in ("kind", "planted_topic", "planted_at", "return_at"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert np.array_equal(a.sequences.values, b.sequences.values)
    assert np.array_equal(a.sequences.offsets, b.sequences.offsets)
    other = generate_long_histories(LongHistoryConfig(**{**cfg.__dict__, "seed": 6}))
    assert not np.array_equal(other.sequences.lengths, a.sequences.lengths)
    blocks = list(iter_long_history_blocks(cfg))
    assert [len(blk.sequences) for blk in blocks] == [LONG_BLOCK_USERS, 10]
    assert np.array_equal(
        np.concatenate([blk.sequences.values for blk in blocks]), a.sequences.values
    )
    assert np.array_equal(np.concatenate([blk.kind for blk in blocks]), a.kind)


def test_planted_at_end_and_examples() -> None:
    cfg = LongHistoryConfig(**{**TINY.__dict__, "n_users": 8, "planted_at_end": True})
    data = generate_long_histories(cfg)
    assert np.array_equal(data.return_at + cfg.planted_return, data.sequences.lengths)
    ex = long_range_examples(data, controls=2, seed=0)
    long = ex.long_range
    assert long.sum() == 8 and np.array_equal(ex.users[long], np.arange(8))
    assert np.array_equal(ex.cuts[long], data.return_at)
    assert (data.item_topic[ex.targets[long]] == data.planted_topic[ex.users[long]]).all()
    control_kind = data.kind[data.sequences.offsets[ex.users[~long]] + ex.cuts[~long]]
    assert (control_kind == EVENT_ORDINARY).all() and (~long).sum() > 0
    assert (ex.cuts[~long] >= data.planted_at[ex.users[~long]] + cfg.planted_burst).all()
    hist = ex.histories(data)
    for i in range(len(ex.users)):
        full = data.sequences[ex.users[i]]
        assert np.array_equal(hist[i], full[: ex.cuts[i]])
        assert full[ex.cuts[i]] == ex.targets[i]
    short = ex.histories(data, max_len=5)
    assert np.array_equal(short[0], data.sequences[ex.users[0]][ex.cuts[0] - 5 : ex.cuts[0]])


@pytest.mark.parametrize(
    ("kwargs", "error", "expected", "got"),
    [
        ({"n_users": 0}, ValueError, "an int >= 1", "0"),
        ({"max_length": 10}, ValueError, "an int >= 10000", "10"),
        ({"planted_gap": 1.5}, TypeError, "an int >= 1", "1.5"),
        ({"explore_ratio": 2.0}, ValueError, "a float in [0, 1]", "2.0"),
        ({"planted_at_end": 1}, TypeError, "a bool", "1"),
        ({"planted_repeat": "yes"}, TypeError, "a bool", "'yes'"),
    ],
)
def test_config_validation(kwargs, error, expected, got) -> None:
    name = list(kwargs)[-1]
    message = f"The {name!r} parameter of LongHistoryConfig must be {expected}. Got {got} instead."
    with pytest.raises(error, match=re.escape(message)):
        LongHistoryConfig(**kwargs)


def test_planted_repeat_reuses_burst_items_and_leaves_the_rest_unchanged() -> None:
    cfg = LongHistoryConfig(**{**TINY.__dict__, "n_users": 6, "planted_return": 4})
    plain = generate_long_histories(cfg)
    rep = generate_long_histories(LongHistoryConfig(**{**cfg.__dict__, "planted_repeat": True}))
    returns = rep.kind == EVENT_RETURN
    # only the return events differ (the repeat draws come after every other draw of the block)
    assert np.array_equal(plain.sequences.values[~returns], rep.sequences.values[~returns])
    assert np.array_equal(plain.kind, rep.kind) and np.array_equal(plain.return_at, rep.return_at)
    for u in range(6):
        items = rep.sequences[u]
        at, back = rep.planted_at[u], rep.return_at[u]
        burst = set(items[at : at + cfg.planted_burst].tolist())
        assert set(items[back : back + 4].tolist()) <= burst
    # fresh draws from the topic are not confined to the burst (3 burst events, 200 items a topic)
    outside = [
        set(plain.sequences[u][plain.return_at[u] : plain.return_at[u] + 4].tolist())
        - set(plain.sequences[u][plain.planted_at[u] : plain.planted_at[u] + 3].tolist())
        for u in range(6)
    ]
    assert any(outside)


def test_planted_extra_adds_interests_and_keeps_the_first_one() -> None:
    cfg = LongHistoryConfig(
        n_users=8, n_items=600, n_topics=12, min_length=400, max_length=400, planted_burst=5,
        planted_gap=150, planted_return=3, planted_fraction=1.0, planted_repeat=True, seed=3,
    )  # fmt: skip
    one = generate_long_histories(cfg)
    many = generate_long_histories(LongHistoryConfig(**{**cfg.__dict__, "planted_extra": 4}))
    first = one.kind > 0
    # the first planted interest and its ground truth are those of planted_extra=0
    assert np.array_equal(one.sequences.values[first], many.sequences.values[first])
    assert np.array_equal(many.kind[first], one.kind[first])
    for name in ("planted_topic", "planted_at", "return_at"):
        assert np.array_equal(getattr(one, name), getattr(many, name))
    # non-planted events change only where an extra gap's exploration hit was redrawn
    changed = (one.sequences.values != many.sequences.values) & (many.kind == EVENT_ORDINARY)
    assert changed.sum() < 0.05 * changed.size
    for u in range(cfg.n_users):
        items = many.sequences[u]
        kind = many.kind[many.sequences.offsets[u] : many.sequences.offsets[u + 1]]
        topic = many.item_topic[items]
        burst_topics = set(topic[kind == EVENT_BURST].tolist())
        assert len(burst_topics) == 5 and many.planted_topic[u] in burst_topics  # 1 + 4 extra
        for p in burst_topics:
            bursts = np.flatnonzero((topic == p) & (kind == EVENT_BURST))
            returns = np.flatnonzero((topic == p) & (kind == EVENT_RETURN))
            assert len(bursts) == 5 and len(returns) == 3
            assert np.array_equal(bursts, bursts[0] + np.arange(5))  # contiguous burst
            assert returns[0] - bursts[-1] - 1 == 150  # G events between them...
            assert not (topic[bursts[-1] + 1 : returns[0]] == p).any()  # ...none of topic p
            assert set(items[returns].tolist()) <= set(items[bursts].tolist())  # repeats


def test_planted_extra_needs_a_topic_for_each_interest() -> None:
    with pytest.raises(
        ValueError, match=r"planted_extra.*at most n_topics - topics_per_user - 1 = 6"
    ):
        LongHistoryConfig(n_topics=10, topics_per_user=3, planted_extra=7)


def test_long_range_split_shows_the_cue_and_targets_the_next_return() -> None:
    from longseq_synthetic import build_split

    cfg = LongHistoryConfig(
        n_users=30, n_items=300, n_topics=10, min_length=200, max_length=200, planted_burst=6,
        planted_gap=100, planted_return=3, planted_fraction=1.0, planted_repeat=True, seed=2,
    )  # fmt: skip
    data = generate_long_histories(cfg)
    split = build_split(cfg, n_valid=5, n_test=5, cue=1)
    # ranked from the whole history (the 'long' protocol), not tiger's 20 most recent events
    assert split.protocol == "long" and split.max_history is None
    assert history_lengths(split.test, split.protocol).min() > 100
    assert len(split.train_users) == 20 and split.train.lengths.tolist() == [200] * 20
    for ex in (split.valid, split.test):
        for i, u in enumerate(ex.users):
            full = data.sequences[u]
            cut = data.return_at[u] + 1
            assert np.array_equal(ex.history[i], full[:cut])  # history ends with the cue
            assert ex.targets[i] == full[cut]
            at = data.planted_at[u]
            assert ex.targets[i] in full[at : at + cfg.planted_burst]  # a burst item comes back
    with pytest.raises(ValueError, match=r"cue must be an int in \[0, planted_return - 1\]"):
        build_split(cfg, n_valid=5, n_test=5, cue=3)


def test_rule_baselines_by_hand() -> None:
    from longseq_synthetic import rule_baselines
    from shortlist.data.sequences import EvalExamples, Jagged, SequenceSplit

    item_topic = np.array([-1, 0, 0, 0, 1, 1, 1])  # items 1-3: topic 0; items 4-6: topic 1

    def examples(history: list[int], target: int) -> EvalExamples:
        return EvalExamples(
            users=np.array([0], dtype=np.int32),
            history=Jagged.from_lengths(np.array(history), np.array([len(history)])),
            targets=np.array([target], dtype=np.int32),
        )

    split = SequenceSplit(
        protocol="long",
        num_items=6,
        train_users=np.array([1], dtype=np.int32),
        train=Jagged.from_lengths(np.array([4, 4, 4, 5, 5, 6, 1]), np.array([7])),  # pop 4 > 5 > 6
        train_timestamps=None,
        valid=examples([1, 6, 2, 6, 5], 6),  # cue 5 (topic 1); topic-1 history: 6 twice, 5 once
        test=examples([1, 6, 2, 6, 5], 4),
        max_history=None,
    )
    got = rule_baselines(split, item_topic, k=2)
    # popularity of topic 1: [4, 5 | 6]: valid target 6 is third (a miss at k=2), test target 4 first
    assert got["cue_topic_popularity"] == {
        "valid_recall@2": 0.0, "valid_ndcg@2": 0.0, "test_recall@2": 1.0, "test_ndcg@2": 1.0,
    }  # fmt: skip
    # copy, most frequent first: [6, 5]: valid target first, test target 4 absent
    assert got["burst_copy"] == {
        "valid_recall@2": 1.0, "valid_ndcg@2": 1.0, "test_recall@2": 0.0, "test_ndcg@2": 0.0,
    }  # fmt: skip
    assert rule_baselines(split, item_topic, k=3)["cue_topic_popularity"]["valid_ndcg@3"] == 0.5
