"""Tests of the synthetic short-video generator: tiny configs, real checks."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from shortlist.data.synthetic import (
    BLOCK_USERS,
    SyntheticConfig,
    count_events,
    generate,
    read_config,
    read_parquet,
    write_parquet,
)

TINY = SyntheticConfig(
    n_users=600,
    n_items=1_000,
    n_topics=10,
    n_categories=5,
    mean_length=20.0,
    max_length=300,
    seed=7,
)


@pytest.fixture(scope="module")
def tiny():
    return generate(TINY)


def _with_topics(data) -> pl.DataFrame:
    """Interactions joined with the item topic and the user's top topic."""
    return data.interactions.join(data.items.select("item", "topic"), on="item").join(
        data.users.select("user", "top_topic"), on="user"
    )


def _rank_slope(items: pl.Series, lo: int, hi: int) -> float:
    """Slope of log(count) against log(rank) over ranks lo..hi (1-based)."""
    counts = items.value_counts(sort=True)["count"].to_numpy()
    ranks = np.arange(1, len(counts) + 1)
    sel = slice(lo - 1, hi)
    return float(np.polyfit(np.log(ranks[sel]), np.log(counts[sel]), 1)[0])


def test_shapes_columns_and_counts(tiny):
    assert tiny.num_users == TINY.n_users
    assert tiny.num_items == TINY.n_items  # the whole catalogue, even items nobody watched
    assert tiny.num_interactions == count_events(TINY)
    assert tiny.order == "time" and tiny.has_timestamps
    schema = tiny.interactions.schema
    assert list(schema) == ["user", "item", "timestamp", "session", "watch_time", "label"]
    assert schema["timestamp"] == pl.Int64 and schema["session"] == pl.Int32
    assert schema["watch_time"] == pl.Float32 and schema["label"] == pl.Float32
    items = tiny.items
    for col in ("item_id", "title", "category", "category_l1", "category_l2", "duration", "topic"):
        assert col in items.columns, col
    assert items["topic"].dtype == pl.Int32 and items["duration"].dtype == pl.Float32
    assert sorted(items["item_id"].to_list()) == list(range(1, TINY.n_items + 1))
    assert items["topic"].n_unique() == TINY.n_topics
    users = tiny.users
    assert users["user_id"].to_list() == list(range(TINY.n_users))
    for col in ("age_bucket", "gender", "activity", "top_topic"):
        assert users[col].null_count() == 0, col
    assert set(users["activity"].unique()) <= {"low", "medium", "high"}
    assert "planted_topic" not in users.columns
    lengths = tiny.sequence_lengths()
    assert lengths.min() >= TINY.min_length and lengths.max() <= TINY.max_length
    assert abs(np.median(lengths) - TINY.median_length) < 0.25 * TINY.median_length
    assert tiny.meta["synthetic_config"]["seed"] == TINY.seed


def test_user_features_can_be_left_out():
    data = generate(
        SyntheticConfig(n_users=50, n_items=40, n_topics=4, n_categories=2, user_features=False)
    )
    assert data.users.columns == ["user", "user_id", "top_topic"]


def test_deterministic_from_the_seed(tiny):
    again = generate(TINY)
    for a, b in (
        (tiny.interactions, again.interactions),
        (tiny.items, again.items),
        (tiny.users, again.users),
    ):
        assert_frame_equal(a, b)
    other = generate(SyntheticConfig(**{**TINY.__dict__, "seed": 8}))
    assert not other.interactions.equals(tiny.interactions)
    assert other.items["title"].to_list() != tiny.items["title"].to_list()


def test_parquet_equals_generate_whatever_the_chunk_size(tmp_path: Path):
    cfg = SyntheticConfig(
        n_users=2 * BLOCK_USERS + 300, n_items=200, n_topics=8, n_categories=4, mean_length=8.0,
        min_length=2, planted_return_gap=10, planted_burst=2, seed=3,
    )  # fmt: skip
    calls: list[tuple[int, int]] = []
    small = write_parquet(
        cfg, tmp_path / "small", chunk_users=1, progress=lambda d, t: calls.append((d, t))
    )
    large = write_parquet(cfg, tmp_path / "large", chunk_users=5_000)
    assert small.n_events == large.n_events == count_events(cfg)
    assert len(calls) == 3 and calls[-1] == (small.n_events, small.n_events)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    for name in ("interactions", "items", "users"):
        a = pl.read_parquet(getattr(small, name))
        b = pl.read_parquet(getattr(large, name))
        assert_frame_equal(a, b)
    assert sorted(p.name for p in (tmp_path / "small").iterdir()) == [
        "interactions.parquet", "items.parquet", "users.parquet",
    ]  # fmt: skip
    assert read_config(small.interactions) == cfg
    data, back = generate(cfg), read_parquet(small.directory)
    assert_frame_equal(data.interactions, back.interactions)
    assert_frame_equal(data.items, back.items)
    assert_frame_equal(data.users, back.users)
    assert data.meta == back.meta


def test_interrupted_write_leaves_nothing(tmp_path: Path):
    def stop(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_parquet(TINY, tmp_path, progress=stop)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("exponent", [0.7, 1.1])
def test_popularity_follows_zipf(exponent: float):
    cfg = SyntheticConfig(
        n_users=3_000, n_items=1_000, n_topics=10, n_categories=5, mean_length=30.0,
        zipf_exponent=exponent, avoid_repeats=False, seed=1,
    )  # fmt: skip
    items = generate(cfg).interactions["item"]
    assert _rank_slope(items, 3, 200) == pytest.approx(-exponent, abs=0.12)
    counts = items.value_counts(sort=True)["count"].to_numpy()
    assert counts[0] > 20 * np.median(counts)


def test_avoiding_repeats_keeps_a_heavy_tail():
    cfg = SyntheticConfig(
        n_users=2_000, n_items=1_000, n_topics=10, n_categories=5, mean_length=30.0
    )
    data = generate(cfg)
    inter = data.interactions
    repeats = inter.height - inter.select("user", "item").unique().height
    assert repeats < 0.1 * inter.height
    counts = inter["item"].value_counts(sort=True)["count"].to_numpy()
    assert counts[:10].mean() > 5 * np.median(counts)
    assert -cfg.zipf_exponent - 0.05 < _rank_slope(inter["item"], 3, 200) < -0.2
    with_repeats = generate(
        SyntheticConfig(**{**cfg.__dict__, "avoid_repeats": False})
    ).interactions
    assert with_repeats.height - with_repeats.select("user", "item").unique().height > 2 * repeats


def test_events_concentrate_on_latent_topics(tiny):
    joined = _with_topics(tiny)
    on_top = (joined["topic"] == joined["top_topic"]).mean()
    assert on_top > 0.3 and on_top > 4 / TINY.n_topics
    # Per user, the most watched topic is mostly the latent top topic.
    per_user = (
        joined.group_by("user", "topic")
        .len()
        .sort("len", "topic", descending=True)
        .group_by("user")
        .first()
    )
    agree = per_user.join(tiny.users.select("user", "top_topic"), on="user")
    assert (agree["topic"] == agree["top_topic"]).mean() > 0.6
    # Sessions focus on a topic: consecutive events share it more often inside a session than
    # across a session boundary.
    pairs = joined.select(
        (pl.col("topic") == pl.col("topic").shift(1)).over("user").alias("same"),
        (pl.col("session").diff() == 0).over("user").alias("inside"),
    ).drop_nulls()
    inside = pairs.filter("inside")["same"].mean()
    across = pairs.filter(~pl.col("inside"))["same"].mean()
    assert inside > across + 0.1


def test_timestamps_increase_and_sessions_match_gaps(tiny):
    inter = tiny.interactions
    gaps = inter.select(
        pl.col("user"),
        pl.col("timestamp").diff().over("user").alias("gap"),
        pl.col("session").diff().over("user").alias("step"),
    ).drop_nulls()
    assert gaps["gap"].min() >= 1  # strictly increasing per user
    assert set(gaps["step"].unique()) == {0, 1}
    new = gaps["step"] == 1
    assert (gaps.filter(new)["gap"] >= TINY.session_break_s).all()
    assert (gaps.filter(~new)["gap"] < TINY.session_break_s).all()
    first = inter.group_by("user").agg(pl.col("session").first(), pl.col("timestamp").first())
    assert (first["session"] == 0).all()
    assert first["timestamp"].min() >= TINY.start_time
    assert first["timestamp"].max() < TINY.start_time + TINY.start_spread_days * 86_400
    sessions = inter.group_by("user", "session").len()["len"].to_numpy()
    assert 0.5 * TINY.mean_session_length < sessions.mean() < 1.5 * TINY.mean_session_length
    between = gaps.filter(new)["gap"].to_numpy() - TINY.session_break_s
    assert 3600 < np.median(between) < 3 * 86_400  # hours to days


def test_watch_time_and_label(tiny):
    joined = tiny.interactions.join(tiny.items.select("item", "duration"), on="item")
    watch = joined["watch_time"].to_numpy().astype(np.float64)
    duration = joined["duration"].to_numpy().astype(np.float64)
    assert (watch >= 0).all() and (watch <= duration).all()
    assert (duration >= 3).all() and (duration <= TINY.duration_max_s).all()
    expected = watch >= TINY.effective_view_ratio * duration
    np.testing.assert_array_equal(joined["label"].to_numpy(), expected.astype(np.float32))
    assert 0.2 < expected.mean() < 0.9
    # Watch time depends on affinity: items of the user's top topic are watched longer.
    topics = (
        _with_topics(tiny)
        .join(tiny.items.select("item", "duration"), on="item")
        .with_columns((pl.col("watch_time") / pl.col("duration")).alias("fraction"))
    )
    on_top = topics.filter(pl.col("topic") == pl.col("top_topic"))["fraction"].mean()
    off_top = topics.filter(pl.col("topic") != pl.col("top_topic"))["fraction"].mean()
    assert on_top > off_top + 0.1


def test_titles_and_categories_carry_the_topic(tiny):
    items = tiny.items
    words = [title.split() for title in items["title"].to_list()]
    topics = items["topic"].to_list()
    topics_of: dict[str, set[int]] = defaultdict(set)
    for ws, t in zip(words, topics, strict=True):
        assert 4 <= len(ws) <= 9
        for w in ws:
            topics_of[w].add(t)
    specific = {w for w, ts in topics_of.items() if len(ts) == 1}
    assert len(specific) <= TINY.n_topics * TINY.words_per_topic
    correct = 0
    for ws, t in zip(words, topics, strict=True):
        votes = Counter(next(iter(topics_of[w])) for w in ws if w in specific)
        assert votes, ws  # every title has a word of its topic
        correct += votes.most_common(1)[0][0] == t
    assert correct == len(words)
    # Items of a topic share vocabulary: most of a topic's words appear in several of its titles.
    uses = Counter(w for ws in words for w in set(ws) if w in specific)
    assert np.median(list(uses.values())) >= 3
    # Categories: level 2 is the topic, level 1 groups whole topics, category = "l1/l2".
    per_topic = items.group_by("topic").agg(
        pl.col("category_l2").n_unique(), pl.col("category_l1").n_unique()
    )
    assert (per_topic["category_l2"] == 1).all() and (per_topic["category_l1"] == 1).all()
    assert items["category_l2"].n_unique() == TINY.n_topics
    assert items["category_l1"].n_unique() == TINY.n_categories
    assert (items["category"] == items["category_l1"] + "/" + items["category_l2"]).all()
    assert all(re.fullmatch(r"[a-z]+(-\d+)?/[a-z]+", c) for c in items["category"].to_list())


def test_planted_returning_interests():
    base = SyntheticConfig(
        n_users=800, n_items=400, n_topics=10, n_categories=5, mean_length=60.0, max_length=400,
        seed=5,
    )  # fmt: skip
    gap, burst = 40, 4
    cfg = SyntheticConfig(
        **{
            **base.__dict__,
            "planted_return_gap": gap,
            "planted_burst": burst,
            "planted_fraction": 0.7,
        }
    )
    data = generate(cfg)
    users = data.users
    lengths = data.sequence_lengths()
    planted = users.filter(pl.col("planted_topic").is_not_null())
    eligible = lengths >= 2 * burst + gap
    assert 0.5 * eligible.sum() < planted.height < 0.9 * eligible.sum()
    assert eligible[planted["user"].to_numpy()].all()
    assert (planted["planted_return_at"] - planted["planted_at"] == burst + gap).all()
    assert (planted["planted_topic"] != planted["top_topic"]).all()
    item_topic = data.items["topic"].to_numpy()
    seqs = data.sequences()
    for row in planted.iter_rows(named=True):
        topics = item_topic[seqs[row["user"]] - 1]
        p, at, back = row["planted_topic"], row["planted_at"], row["planted_return_at"]
        assert (topics[at : at + burst] == p).all()
        assert (topics[back : back + burst] == p).all()
        assert not (topics[at + burst : back] == p).any()
    # Planting changes only the planted users' events.
    plain = generate(base)
    keep = users.filter(pl.col("planted_topic").is_null())["user"].implode()

    def raw(d) -> pl.DataFrame:  # item indices follow first appearance: compare raw IDs
        inter = d.interactions.filter(pl.col("user").is_in(keep))
        return inter.join(d.items.select("item", "item_id"), on="item").drop("item")

    assert_frame_equal(raw(data), raw(plain))
    assert raw(data).height > data.num_interactions / 3
    assert_frame_equal(plain.users, users.drop("planted_topic", "planted_at", "planted_return_at"))


@pytest.mark.parametrize(
    ("kwargs", "error", "expected", "got"),
    [
        ({"n_users": 0}, ValueError, "an int >= 1", "0"),
        ({"n_users": 1.5}, TypeError, "an int >= 1", "1.5"),
        ({"n_items": True}, TypeError, "an int >= n_topics (20)", "True"),
        ({"n_topics": 8, "n_categories": 9}, ValueError, "an int in [1, n_topics (8)]", "9"),
        ({"max_length": 3}, ValueError, "an int >= min_length (5)", "3"),
        ({"zipf_exponent": -1.0}, ValueError, "a float in [0, 5]", "-1.0"),
        ({"explore_ratio": "0.1"}, TypeError, "a float in [0, 1]", "'0.1'"),
        ({"mean_length": 0}, ValueError, "a float > 0", "0"),
        ({"mean_length": float("nan")}, ValueError, "a float > 0", "nan"),
        ({"effective_view_ratio": 0.0}, ValueError, "a float in (0, 1]", "0.0"),
        ({"session_break_s": 60}, ValueError, "an int >= duration_max_s + 121 (421)", "60"),
        (
            {"planted_return_gap": 995},
            ValueError,
            "an int in [1, max_length - 2 * planted_burst (990)] or None",
            "995",
        ),
        ({"user_features": 1}, TypeError, "a bool", "1"),
    ],
)
def test_config_validation(kwargs, error, expected, got):
    name = list(kwargs)[-1]  # the parameter at fault is given last
    message = f"The {name!r} parameter of SyntheticConfig must be {expected}. Got {got} instead."
    with pytest.raises(error, match=re.escape(message)):
        SyntheticConfig(**kwargs)


def test_write_parquet_checks_chunk_users(tmp_path: Path):
    with pytest.raises(
        ValueError,
        match=re.escape(
            "The 'chunk_users' parameter of write_parquet must be an int >= 1. Got 0 instead."
        ),
    ):
        write_parquet(TINY, tmp_path, chunk_users=0)
