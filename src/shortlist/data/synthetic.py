"""Synthetic short-video interactions: users with latent interests, Zipf item popularity, sessions,
item text and categories, and watch-time feedback, at any size from a test fixture to 10^8 events.

It is the embedded default dataset of ``shortlist quickstart`` (:func:`generate`, in memory) and the
input of the scale benchmarks (:func:`write_parquet`, streamed to Parquet in bounded memory).

Notation: U users, N items, K topics, C level-1 categories, m topic slots per user, s the Zipf
exponent, L_u the number of events of user u, sigma(x) = 1 / (1 + exp(-x)).

Generative process:

1. Items. Topics z_i are balanced (a random permutation of ``i mod K``). Popularity ranks rho_i
   are a random permutation of 1..N and weights w_i = rho_i^(-s). The topic prior is
   pi_k proportional to sum_{i: z_i = k} w_i. Duration d_i ~ LogNormal (median
   ``duration_median_s``) clipped to [3 s, ``duration_max_s``]; quality q_i ~ N(0, 0.5^2).
   Each topic has V = ``words_per_topic`` pseudo-words (``"kalomi"``) of its own; a title has 4-9
   words, each a word of topic z_i with probability 0.75 (at least one) or else a shared filler
   word (``"my"``, ``"best"``...), so bag-of-words or text embeddings recover the topic. Topic k
   belongs to level-1 category c(k) = floor(k C / K) (a readable genre, ``"comedy"``); its level-2
   category is the topic's name (its first word): ``category = "comedy/kalomi"``.
2. Users. L_u = clip(round(LogNormal(log mu - sigma_L^2 / 2, sigma_L)), min_length, max_length), so
   the mean length before clipping is mu = ``mean_length``. Optional features: an age bucket a_u and
   a gender g_u, which tilt the topic prior, pi^(a,g)_k proportional to
   pi_k exp(0.5 (h_{a,k} + h'_{g,k})) with h, h' ~ N(0, 1) fixed per dataset; an activity level
   derived from L_u. Latent interests: m slots t_{u,j} ~ Cat(pi^(a,g)) i.i.d. with weights
   gamma_u ~ Dirichlet(alpha, ..., alpha), theta_u = sum_j gamma_{u,j} e_{t_{u,j}}: a sparse mixture
   over at most m topics whose mean is the topic prior, so (without features) the expected item
   popularity is exactly Zipf. ``top_topic`` = argmax_k theta_u(k).
3. Sessions. Each event starts a new session with probability 1 / ``mean_session_length`` (a user's
   first event always does); each session has a focus topic drawn from theta_u.
4. Events. The event's topic is the session focus with probability ``session_focus``, else a fresh
   draw from theta_u; the item is drawn within that topic with probability proportional to w_i.
   With probability ``explore_ratio`` the item is instead drawn from the global Zipf law (w_i).
   With ``avoid_repeats`` (default), an item the user already consumed is redrawn, as a feed
   that hides watched videos would: a few times by popularity within the same topic, then
   uniformly within it (its long tail), then within another of the user's topics, then once from
   the global law; the few repeats left (a few percent) act as re-watches. Without it the
   expected item popularity is exactly Zipf(s) and the rank-frequency slope is -s; with it an
   item gets at most about one event per user, so the head is capped by its topic's audience and
   the realised slope is flatter (about -0.45 for s = 0.8 at the quickstart size): s is then the
   exponent of the propensity, not of the realised counts.
5. Feedback. Affinity a = theta_u(z_i) / max_k theta_u(k) in [0, 1]; the watched fraction is
   f = sigma(-1.5 + 3 a + q_i + xi), xi ~ N(0, 1); ``watch_time = f d_i`` and
   ``label = 1[watch_time >= effective_view_ratio * d_i]`` (an "effective view").
6. Time. A user's first event is at ``start_time`` + U(0, ``start_spread_days``). Within a session
   the next event follows ceil(watch_time) + o seconds later (o in [1, 120], median 4), so every gap
   inside a session is shorter than ``session_break_s``; between sessions the gap is
   ``session_break_s`` + LogNormal(median ``session_gap_median_s``, sigma 1) seconds (hours to
   days).
   Timestamps strictly increase per user, so positions in a user's sequence follow time.
7. Planted returning interests (``planted_return_gap = G`` set). Among users with
   L_u >= 2 B + G (B = ``planted_burst``), a fraction ``planted_fraction`` get a topic p outside
   their interest slots: B events of topic p at positions [P, P + B), none of topic p during the
   next G events, and B events of topic p again at [P + B + G, P + 2 B + G), with affinity 1 (a real
   interest). The users table records ``planted_topic`` = p, ``planted_at`` = P and
   ``planted_return_at`` = P + B + G (0-based positions in the user's time-ordered sequence; null
   for users without a planted interest), so a long-history model's recovery of p can be measured.

Determinism: items, topics and text come from their own random stream, and every block of
``BLOCK_USERS`` consecutive users from its own stream
(``np.random.SeedSequence(seed, spawn_key=(stream, block))``), so the data depend only on the
config, never on how many users :func:`write_parquet` holds in memory at a time. Planted interests
use a third stream per block, so setting ``planted_return_gap`` changes only the planted users'
events.

Example:
    >>> data = generate(SyntheticConfig(n_users=200, n_items=100, n_topics=8, n_categories=4))
    >>> data.num_users, data.num_items <= 100, data.has_timestamps
    (200, True, True)
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shortlist.data.build import build_dataset
from shortlist.data.schema import InteractionData

log = logging.getLogger(__name__)

NAME = "synthetic"
BLOCK_USERS = 1024  # users per random stream: part of the data's definition, do not change
META_KEY = b"shortlist.synthetic.config"  # Parquet schema metadata: the config as JSON

# Random streams (SeedSequence spawn keys).
_ITEMS_STREAM, _USERS_STREAM, _PLANTED_STREAM, _TEXT_STREAM = 0, 1, 2, 3

# Fixed constants of the generative process (see the module docstring).
_MIN_DURATION_S = 3.0
_DURATION_SIGMA = 0.7
_QUALITY_SD = 0.5
_WATCH_BIAS, _WATCH_AFFINITY, _WATCH_NOISE = -1.5, 3.0, 1.0
_OVERHEAD_MEDIAN_S, _OVERHEAD_MAX_S = 4.0, 120  # browsing time between two events of a session
_FEATURE_TILT = 0.5
_TITLE_WORDS = (4, 9)  # title length range, inclusive
_TOPIC_WORD_P = 0.75
_REDRAWS = 3  # redraws of an already consumed item per source (see _avoid_repeats)

_AGE_BUCKETS = ("under-18", "18-24", "25-34", "35-44", "45-54", "55+")
_AGE_P = (0.08, 0.25, 0.28, 0.18, 0.12, 0.09)
_GENDERS = ("female", "male", "unknown")
_GENDER_P = (0.48, 0.47, 0.05)
_ACTIVITY = ("low", "medium", "high")
_GENRES = (
    "comedy", "music", "dance", "food", "travel", "sports", "gaming", "beauty", "fashion", "pets",
    "science", "education", "news", "cars", "art", "family", "fitness", "nature", "tech", "film",
)  # fmt: skip
_FILLERS = (
    "my", "the", "best", "new", "day", "with", "how", "to", "of", "in", "and", "top", "first",
    "last", "video", "part", "one", "two", "your", "our", "this", "why", "when", "quick", "easy",
    "full", "live", "real", "little", "big", "today", "ever",
)  # fmt: skip
_CONSONANTS, _VOWELS = "bdfgklmnprstvz", "aeiou"


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of the synthetic short-video dataset (defaults: the quickstart's ~5,000 users,
    2,000 items, median 40 events per user, about 300,000 events)."""

    n_users: int = 5_000
    n_items: int = 2_000
    n_topics: int = 20  # K latent topics; each item has one, each user a sparse mixture
    n_categories: int = 5  # C level-1 categories; topics are split evenly among them
    mean_length: float = 60.0  # mean events per user before clipping (median = mean e^(-sigma^2/2))
    length_sigma: float = 0.9  # sigma of the log-normal user length (heavy tail)
    min_length: int = 5
    max_length: int = 1_000
    zipf_exponent: float = 0.8  # s: item weight = popularity_rank^(-s); 0 = uniform
    topics_per_user: int = 3  # m interest slots per user (slots may repeat a topic)
    topic_concentration: float = 0.5  # Dirichlet alpha over the slots; small = one dominant topic
    explore_ratio: float = 0.1  # share of events drawn from global popularity, ignoring interests
    session_focus: float = 0.8  # probability that an event's topic is its session's focus topic
    mean_session_length: float = 8.0  # events per session (geometric)
    session_break_s: int = 1_800  # every gap between sessions is >= this, every gap within is <
    session_gap_median_s: float = 6 * 3600.0  # median extra gap between sessions, beyond the break
    start_time: int = 1_704_067_200  # 2024-01-01 00:00 UTC, epoch seconds
    start_spread_days: float = 30.0  # users' first events are spread uniformly over this period
    duration_median_s: float = 25.0
    duration_max_s: float = 300.0
    effective_view_ratio: float = 0.5  # label = 1 when watch_time >= ratio * duration
    words_per_topic: int = 16  # V: vocabulary words of each topic, used in titles
    avoid_repeats: bool = True  # redraw items the user already watched (a few repeats remain)
    user_features: bool = True  # age bucket, gender and activity level in the users table
    planted_return_gap: int | None = None  # G: events between a planted interest and its return
    planted_burst: int = 5  # B: events of the planted topic at its appearance and at its return
    planted_fraction: float = 0.5  # share of long-enough users (L_u >= 2B + G) that get one
    seed: int = 0

    def __post_init__(self) -> None:
        _check_int("n_users", self.n_users, 1)
        _check_int("n_topics", self.n_topics, 1)
        _check_int("n_items", self.n_items, self.n_topics, low_text=f"n_topics ({self.n_topics})")
        _check_int(
            "n_categories",
            self.n_categories,
            1,
            self.n_topics,
            high_text=f"n_topics ({self.n_topics})",
        )
        _check_float("mean_length", self.mean_length, 0.0, open_low=True)
        _check_float("length_sigma", self.length_sigma, 0.0)
        _check_int("min_length", self.min_length, 1)
        _check_int(
            "max_length",
            self.max_length,
            self.min_length,
            low_text=f"min_length ({self.min_length})",
        )
        _check_float("zipf_exponent", self.zipf_exponent, 0.0, 5.0)
        _check_int("topics_per_user", self.topics_per_user, 1)
        _check_float("topic_concentration", self.topic_concentration, 0.0, open_low=True)
        _check_float("explore_ratio", self.explore_ratio, 0.0, 1.0)
        _check_float("session_focus", self.session_focus, 0.0, 1.0)
        _check_float("mean_session_length", self.mean_session_length, 1.0)
        _check_float("duration_median_s", self.duration_median_s, _MIN_DURATION_S)
        _check_float(
            "duration_max_s",
            self.duration_max_s,
            self.duration_median_s,
            low_text=f"duration_median_s ({self.duration_median_s})",
        )
        need = math.ceil(self.duration_max_s) + _OVERHEAD_MAX_S + 1
        _check_int(
            "session_break_s",
            self.session_break_s,
            need,
            low_text=f"duration_max_s + {_OVERHEAD_MAX_S + 1} ({need})",
        )
        _check_float("session_gap_median_s", self.session_gap_median_s, 0.0, open_low=True)
        _check_int("start_time", self.start_time, 0)
        _check_float("start_spread_days", self.start_spread_days, 0.0)
        _check_float("effective_view_ratio", self.effective_view_ratio, 0.0, 1.0, open_low=True)
        _check_int("words_per_topic", self.words_per_topic, 1)
        for name in ("avoid_repeats", "user_features"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(_bad(name, "a bool", getattr(self, name)))
        _check_int("planted_burst", self.planted_burst, 1)
        _check_float("planted_fraction", self.planted_fraction, 0.0, 1.0)
        if self.planted_return_gap is not None:
            most = self.max_length - 2 * self.planted_burst
            _check_int(
                "planted_return_gap",
                self.planted_return_gap,
                1,
                most,
                high_text=f"max_length - 2 * planted_burst ({most})",
                none=True,
            )
            _check_int(
                "n_topics",
                self.n_topics,
                self.topics_per_user + 1,
                low_text=f"topics_per_user + 1 ({self.topics_per_user + 1}) when "
                "planted_return_gap is set",
            )
        _check_int("seed", self.seed, 0)

    @property
    def median_length(self) -> float:
        """Median events per user before clipping."""
        return self.mean_length * math.exp(-(self.length_sigma**2) / 2)


@dataclass(frozen=True)
class SyntheticFiles:
    """What :func:`write_parquet` wrote: three Parquet files and their row counts."""

    directory: Path
    interactions: Path
    items: Path
    users: Path
    n_events: int
    n_users: int
    n_items: int
    config: SyntheticConfig


# -- validation ---------------------------------------------------------------------------------


def _bad(name: str, expected: str, value: Any) -> str:
    return f"The {name!r} parameter of SyntheticConfig must be {expected}. Got {value!r} instead."


def _check_int(
    name: str,
    value: Any,
    low: int,
    high: int | None = None,
    *,
    low_text: str | None = None,
    high_text: str | None = None,
    none: bool = False,
) -> None:
    lo, hi = low_text or str(low), high_text or (str(high) if high is not None else "")
    expected = f"an int in [{lo}, {hi}]" if high is not None else f"an int >= {lo}"
    if none:
        expected += " or None"
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(_bad(name, expected, value))
    if value < low or (high is not None and value > high):
        raise ValueError(_bad(name, expected, value))


def _check_float(
    name: str,
    value: Any,
    low: float,
    high: float | None = None,
    *,
    open_low: bool = False,
    low_text: str | None = None,
) -> None:
    lo = low_text or f"{low:g}"
    if high is None:
        expected = f"a float {'>' if open_low else '>='} {lo}"
    else:
        expected = f"a float in {'(' if open_low else '['}{lo}, {high:g}]"
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(_bad(name, expected, value))
    ok = (value > low if open_low else value >= low) and (high is None or value <= high)
    if not ok or not math.isfinite(value):
        raise ValueError(_bad(name, expected, value))


# -- random streams and sampling helpers --------------------------------------------------------


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _segment_cdf(weights: np.ndarray, seg_start: np.ndarray) -> np.ndarray:
    """Concatenated per-segment CDFs, segment k's shifted into (k, k + 1], ending at exactly k + 1.

    ``weights`` (M,) > 0 are grouped in consecutive non-empty segments starting at ``seg_start``
    (S,); inverse-CDF sampling of segment k then is one ``searchsorted(cdf, k + u)``.
    """
    counts = np.diff(np.append(seg_start, len(weights)))
    seg = np.repeat(np.arange(len(seg_start)), counts)
    csum = np.cumsum(weights)
    before = np.concatenate([[0.0], csum])[seg_start]  # (S,) mass before each segment
    total = np.add.reduceat(weights, seg_start)  # (S,)
    cdf = seg + (csum - before[seg]) / total[seg]
    cdf[seg_start + counts - 1] = np.arange(1, len(seg_start) + 1)
    return cdf


def _sample_segments(
    cdf: np.ndarray, seg_end: np.ndarray, seg: np.ndarray, u: np.ndarray
) -> np.ndarray:
    """Positions drawn within segments ``seg`` (any shape) from uniforms ``u`` in [0, 1)."""
    pos = np.searchsorted(cdf, seg + u, side="right")
    return np.minimum(pos, seg_end[seg] - 1)  # guards k + u rounding up to k + 1


def _draw_slot(cum: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Slot index per row of ``cum`` (n, m), a row-wise CDF, from uniforms ``u`` (n,)."""
    return np.minimum((cum <= u[:, None]).sum(1), cum.shape[1] - 1)


def _topic_draws(world: _World, topics: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Items (0-based) drawn within ``topics`` by popularity (w_i), one per uniform in ``u``."""
    return world.topic_items[_sample_segments(world.topic_cdf, world.topic_end, topics, u)]


def _draw_items(
    world: _World, topic: np.ndarray, explore: np.ndarray, u: np.ndarray, *, uniform: bool = False
) -> np.ndarray:
    """Items (0-based) drawn within ``topic``, or among all items where ``explore``: by popularity
    (w_i), or uniformly when ``uniform``."""
    item = np.empty(len(topic), dtype=np.int64)
    k, ut = topic[~explore], u[~explore]
    if uniform:
        end = world.topic_end[k]
        start = end - np.diff(world.topic_end, prepend=0)[k]
        pos = np.minimum(start + np.floor(ut * (end - start)).astype(np.int64), end - 1)
        item[~explore] = world.topic_items[pos]
    else:
        item[~explore] = _topic_draws(world, k, ut)
    n = len(world.global_cdf)
    if uniform:
        item[explore] = np.minimum(np.floor(u[explore] * n).astype(np.int64), n - 1)
    else:
        item[explore] = np.minimum(
            np.searchsorted(world.global_cdf, u[explore], side="right"), n - 1
        )
    return item


def _repeats(key: np.ndarray) -> np.ndarray:
    """(n,) bool: the key occurs at an earlier index (keys: user * N + item, in event order)."""
    order = np.argsort(key, kind="stable")  # stable: a user's first occurrence comes first
    sorted_key = key[order]
    repeat = np.zeros(len(key), dtype=bool)
    repeat[order[1:]] = sorted_key[1:] == sorted_key[:-1]
    return repeat


def _in_sorted(values: np.ndarray, sorted_values: np.ndarray) -> np.ndarray:
    """(n,) bool: membership of ``values`` in the sorted array ``sorted_values``."""
    if sorted_values.size == 0:
        return np.zeros(len(values), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_values, values), len(sorted_values) - 1)
    return sorted_values[pos] == values


def _avoid_repeats(
    rng: np.random.Generator,
    world: _World,
    user: np.ndarray,
    item: np.ndarray,
    topic: np.ndarray,
    explore: np.ndarray,
    allowed: np.ndarray,
    interest: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> None:
    """Redraw, in place, items a user already consumed (only at events where ``allowed``).

    Rounds of ``_REDRAWS`` redraws each, until no repeat is left: from the same source (the
    event's topic, or all items where ``explore``) by popularity, then uniformly (the feed digs
    into the topic's long tail); then, if ``interest`` is given (event indices, uniforms -> topics
    drawn from the users' interests), uniformly within another of the user's topics; finally once
    from global popularity. Some repeats may remain.

    A redrawn item is accepted when the user has it at no other event and no earlier redrawn event
    of the same round took it; accepted events then stay fixed. Costs one sort of the events, then
    O(r log E) per round for r pending events.
    """
    n_items = len(world.item_topic)
    key = user * n_items + item  # (E,)
    redo = np.flatnonzero(_repeats(key) & allowed)  # pending events, ascending
    settled = np.sort(np.delete(key, redo))  # keys of the events that stay as they are
    rounds = 2 * _REDRAWS if interest is None else 3 * _REDRAWS + 1
    for attempt in range(rounds):
        if redo.size == 0:
            return
        uniform, glob, source = attempt >= _REDRAWS, explore[redo], topic[redo]
        if attempt >= 3 * _REDRAWS:
            uniform, glob = False, np.ones(redo.size, dtype=bool)
        elif attempt >= 2 * _REDRAWS:
            assert interest is not None
            glob, source = np.zeros(redo.size, dtype=bool), interest(redo, rng.random(redo.size))
        item[redo] = _draw_items(world, source, glob, rng.random(redo.size), uniform=uniform)
        new = user[redo] * n_items + item[redo]
        clash = _in_sorted(new, settled) | _repeats(new)
        accepted = np.sort(new[~clash])
        settled = np.insert(settled, np.searchsorted(settled, accepted), accepted)
        redo = redo[clash]


def _lengths(cfg: SyntheticConfig, rng: np.random.Generator, n: int) -> np.ndarray:
    mu = math.log(cfg.mean_length) - cfg.length_sigma**2 / 2
    raw = np.rint(rng.lognormal(mu, cfg.length_sigma, n))
    return np.clip(raw, cfg.min_length, cfg.max_length).astype(np.int64)


def _n_blocks(cfg: SyntheticConfig) -> int:
    return -(-cfg.n_users // BLOCK_USERS)


def _block_size(cfg: SyntheticConfig, b: int) -> int:
    return min(cfg.n_users, (b + 1) * BLOCK_USERS) - b * BLOCK_USERS


def count_events(config: SyntheticConfig) -> int:
    """The exact number of events the config generates (draws only the user lengths: fast)."""
    total = 0
    for b in range(_n_blocks(config)):
        rng = _rng(config.seed, _USERS_STREAM, b)
        total += int(_lengths(config, rng, _block_size(config, b)).sum())
    return total


# -- items ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _World:
    """Item-side state shared by every user block. Item i (0-based) has raw ID i + 1."""

    item_topic: np.ndarray  # (N,) int32
    duration: np.ndarray  # (N,) float32 seconds
    quality: np.ndarray  # (N,) float64
    topic_items: np.ndarray  # (N,) int64 items sorted by topic: topic k's are a segment
    topic_cdf: np.ndarray  # (N,) float64 per-topic popularity CDFs (see _segment_cdf)
    topic_end: np.ndarray  # (K,) int64 end of each topic's segment
    global_cdf: np.ndarray  # (N,) float64 popularity CDF over all items
    group_cdf: np.ndarray  # (G * K,) topic-prior CDF of each (age, gender) group
    group_end: np.ndarray  # (G,) int64


def _build_world(cfg: SyntheticConfig) -> _World:
    rng = _rng(cfg.seed, _ITEMS_STREAM)
    n, k = cfg.n_items, cfg.n_topics
    item_topic = rng.permutation(np.arange(n) % k).astype(np.int32)
    rank = rng.permutation(n) + 1
    weight = rank.astype(np.float64) ** -cfg.zipf_exponent  # (N,)
    topic_items = np.argsort(item_topic, kind="stable")
    topic_end = np.cumsum(np.bincount(item_topic, minlength=k))
    topic_start = topic_end - np.bincount(item_topic, minlength=k)
    topic_cdf = _segment_cdf(weight[topic_items], topic_start)
    global_cdf = np.cumsum(weight) / weight.sum()
    global_cdf[-1] = 1.0
    duration = rng.lognormal(math.log(cfg.duration_median_s), _DURATION_SIGMA, n)
    duration = np.clip(np.round(duration, 1), _MIN_DURATION_S, cfg.duration_max_s)
    duration = duration.astype(np.float32)
    quality = rng.normal(0.0, _QUALITY_SD, n)
    pi = np.bincount(item_topic, weights=weight, minlength=k)
    pi /= pi.sum()  # (K,) topic prior
    if cfg.user_features:
        h_age = rng.standard_normal((len(_AGE_BUCKETS), k))
        h_gender = rng.standard_normal((len(_GENDERS), k))
        # (G, K) with G = 6 * 3 groups, group g = age * 3 + gender
        tilt = (h_age[:, None, :] + h_gender[None, :, :]).reshape(-1, k)
        prior = pi[None, :] * np.exp(_FEATURE_TILT * tilt)
    else:
        prior = pi[None, :]
    groups = prior.shape[0]
    group_cdf = _segment_cdf(prior.ravel(), np.arange(groups) * k)
    return _World(
        item_topic=item_topic,
        duration=duration,
        quality=quality,
        topic_items=topic_items,
        topic_cdf=topic_cdf,
        topic_end=topic_end,
        global_cdf=global_cdf,
        group_cdf=group_cdf,
        group_end=(np.arange(groups) + 1) * k,
    )


def _pseudo_words(rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` distinct pronounceable words of consonant-vowel syllables ("kalomi")."""
    syllables = np.array([c + v for c in _CONSONANTS for v in _VOWELS])
    n_syl = 3
    while len(syllables) ** n_syl < 4 * count:
        n_syl += 1
    codes = rng.choice(len(syllables) ** n_syl, size=count, replace=False)
    words = syllables[codes % len(syllables)]
    for j in range(1, n_syl):
        words = np.char.add(words, syllables[codes // len(syllables) ** j % len(syllables)])
    return words


def _items_table(cfg: SyntheticConfig, world: _World) -> pa.Table:
    rng = _rng(cfg.seed, _TEXT_STREAM)
    n, k, v = cfg.n_items, cfg.n_topics, cfg.words_per_topic
    # Topic k's words are vocab[k V : (k + 1) V]; the fillers follow.
    vocab = np.concatenate([_pseudo_words(rng, k * v), np.array(_FILLERS)])
    lo, hi = _TITLE_WORDS
    n_words = rng.integers(lo, hi + 1, n)  # (N,)
    is_topic = rng.random((n, hi)) < _TOPIC_WORD_P  # (N, hi)
    is_topic[np.arange(n), rng.integers(0, n_words)] = True  # at least one topic word
    topic_word = world.item_topic[:, None].astype(np.int64) * v + rng.integers(0, v, (n, hi))
    filler = k * v + rng.integers(0, len(_FILLERS), (n, hi))
    word = np.where(is_topic, topic_word, filler)[np.arange(hi)[None, :] < n_words[:, None]]
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(n_words, out=offsets[1:])
    titles = pc.binary_join(pa.ListArray.from_arrays(offsets, pa.array(vocab[word])), " ")

    topic_name = vocab[np.arange(k) * v]  # a topic's name is its first word
    genre = np.array(
        [
            _GENRES[c % len(_GENRES)] + (f"-{c // len(_GENRES) + 1}" if c >= len(_GENRES) else "")
            for c in range(cfg.n_categories)
        ]
    )
    l1 = genre[np.arange(k) * cfg.n_categories // k][world.item_topic]
    l2 = topic_name[world.item_topic]
    return pa.table(
        {
            "item_id": pa.array(np.arange(1, n + 1, dtype=np.int64)),
            "title": titles,
            "category": pa.array(np.char.add(np.char.add(l1, "/"), l2)),
            "category_l1": pa.array(l1),
            "category_l2": pa.array(l2),
            "duration": pa.array(world.duration),
            "topic": pa.array(world.item_topic),
        }
    )


# -- users and events -----------------------------------------------------------------------------

_INTERACTIONS_SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("item_id", pa.int64()),
        ("timestamp", pa.int64()),
        ("session", pa.int32()),
        ("watch_time", pa.float32()),
        ("label", pa.float32()),
    ]
)


def _users_schema(cfg: SyntheticConfig) -> pa.Schema:
    fields = [("user_id", pa.int64())]
    if cfg.user_features:
        fields += [("age_bucket", pa.string()), ("gender", pa.string()), ("activity", pa.string())]
    fields.append(("top_topic", pa.int32()))
    if cfg.planted_return_gap is not None:
        fields += [(c, pa.int32()) for c in ("planted_topic", "planted_at", "planted_return_at")]
    return pa.schema(fields)


@dataclass(frozen=True)
class _Planted:
    users: np.ndarray  # (P,) block-local user indices
    topic: np.ndarray  # (P,) planted topic
    at: np.ndarray  # (P,) position of the first planted event
    events: np.ndarray  # (2 P B,) block-local event indices of the two bursts


def _plant(
    cfg: SyntheticConfig,
    world: _World,
    b: int,
    lengths: np.ndarray,
    offsets: np.ndarray,
    slot_topic: np.ndarray,
    top_topic: np.ndarray,
    user: np.ndarray,
    item: np.ndarray,
) -> _Planted:
    """Plant returning interests in place in ``item`` (see step 7 of the module docstring)."""
    assert cfg.planted_return_gap is not None
    rng = _rng(cfg.seed, _PLANTED_STREAM, b)
    burst, gap, k = cfg.planted_burst, cfg.planted_return_gap, cfg.n_topics
    span = 2 * burst + gap
    chosen = (lengths >= span) & (rng.random(len(lengths)) < cfg.planted_fraction)
    users = np.flatnonzero(chosen)
    at = np.floor(rng.random(len(users)) * (lengths[users] - span + 1)).astype(np.int64)
    # A topic outside the user's slots, uniform: the c-th topic of the complement.
    slots = np.sort(slot_topic[users], axis=1)  # (P, m)
    dup = np.zeros_like(slots, dtype=bool)
    dup[:, 1:] = slots[:, 1:] == slots[:, :-1]
    slots = np.where(dup, k, slots)  # duplicates can never be passed
    choice = np.floor(rng.random(len(users)) * (k - (~dup).sum(1))).astype(np.int64)
    for j in range(slots.shape[1]):  # ascending: skip every slot topic at or below the choice
        choice += choice >= slots[:, j]
    topic = choice.astype(np.int32)

    first = offsets[users] + at  # (P,)
    bursts = np.concatenate(
        [first[:, None] + np.arange(burst), (first + burst + gap)[:, None] + np.arange(burst)],
        axis=1,
    )  # (P, 2B)
    burst_topic = np.repeat(topic, 2 * burst)
    events = bursts.ravel()
    u = rng.random(len(events))
    item[events] = _topic_draws(world, burst_topic, u)
    if cfg.avoid_repeats:
        allowed = np.zeros(len(item), dtype=bool)
        allowed[events] = True
        event_topic = np.zeros(len(item), dtype=np.int64)
        event_topic[events] = burst_topic
        explore = np.zeros(len(item), dtype=bool)
        _avoid_repeats(rng, world, user, item, event_topic, explore, allowed)
    # No event of the planted topic in between: redraw those (exploration hits) from the top topic.
    between = ((first + burst)[:, None] + np.arange(gap)).ravel()  # (P G,)
    owner = np.repeat(np.arange(len(users)), gap)
    hit = world.item_topic[item[between]] == topic[owner]
    redo, redo_owner = between[hit], owner[hit]
    u = rng.random(len(redo))
    redo_topic = top_topic[users[redo_owner]]
    item[redo] = _topic_draws(world, redo_topic, u)
    return _Planted(users=users, topic=topic, at=at, events=events)


def _block_tables(cfg: SyntheticConfig, world: _World, b: int) -> tuple[pa.Table, pa.Table]:
    """Events and users of block ``b`` (users b*BLOCK_USERS ...), drawn from the block's stream."""
    rng = _rng(cfg.seed, _USERS_STREAM, b)
    u0, nu, m = b * BLOCK_USERS, _block_size(cfg, b), cfg.topics_per_user
    lengths = _lengths(cfg, rng, nu)  # (U_b,) first draw: count_events relies on it
    offsets = np.zeros(nu + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    starts, n_events = offsets[:-1], int(offsets[-1])

    # Users: features and latent interests.
    if cfg.user_features:
        age = rng.choice(len(_AGE_BUCKETS), size=nu, p=_AGE_P)
        gender = rng.choice(len(_GENDERS), size=nu, p=_GENDER_P)
        group = age * len(_GENDERS) + gender
    else:
        group = np.zeros(nu, dtype=np.int64)
    group_pos = _sample_segments(
        world.group_cdf, world.group_end, group[:, None], rng.random((nu, m))
    )
    slot_topic = group_pos - group[:, None] * cfg.n_topics  # (U_b, m)
    gam = rng.standard_gamma(cfg.topic_concentration, (nu, m))
    total = gam.sum(1)
    gam[total == 0, 0] = 1.0  # all gammas underflowed (tiny alpha): everything on slot 0
    slot_weight = gam / gam.sum(1, keepdims=True)  # (U_b, m) Dirichlet
    slot_cum = np.cumsum(slot_weight, 1)
    slot_cum[:, -1] = 1.0
    same = slot_topic[:, :, None] == slot_topic[:, None, :]  # (U_b, m, m)
    theta_slot = (same * slot_weight[:, None, :]).sum(2)  # (U_b, m): theta_u at slot j's topic
    best = theta_slot.argmax(1)
    top_topic = slot_topic[np.arange(nu), best]
    theta_max = theta_slot[np.arange(nu), best]

    # Sessions.
    user = np.repeat(np.arange(nu), lengths)  # (E_b,)
    new_session = rng.random(n_events) < 1.0 / cfg.mean_session_length
    new_session[starts] = True
    session_index = np.cumsum(new_session) - 1  # (E_b,) block-wide session number
    session = (session_index - session_index[starts][user]).astype(np.int32)
    session_user = user[new_session]  # (S_b,)
    focus = slot_topic[
        session_user, _draw_slot(slot_cum[session_user], rng.random(len(session_user)))
    ]

    # Events: topic, then item.
    fresh = slot_topic[user, _draw_slot(slot_cum[user], rng.random(n_events))]
    topic = np.where(rng.random(n_events) < cfg.session_focus, focus[session_index], fresh)
    explore = rng.random(n_events) < cfg.explore_ratio
    u = rng.random(n_events)
    item = _draw_items(world, topic, explore, u)
    if cfg.avoid_repeats:

        def interest(events: np.ndarray, u: np.ndarray) -> np.ndarray:
            owner = user[events]
            return slot_topic[owner, _draw_slot(slot_cum[owner], u)]

        everywhere = np.ones(n_events, dtype=bool)
        _avoid_repeats(rng, world, user, item, topic, explore, everywhere, interest)
    noise = rng.standard_normal(n_events)
    overhead = np.clip(
        np.rint(rng.lognormal(math.log(_OVERHEAD_MEDIAN_S), 0.8, n_events)), 1, _OVERHEAD_MAX_S
    )
    session_gap = cfg.session_break_s + np.rint(
        rng.lognormal(math.log(cfg.session_gap_median_s), 1.0, len(session_user))
    )
    first_time = cfg.start_time + np.floor(rng.random(nu) * cfg.start_spread_days * 86_400)

    planted = None
    if cfg.planted_return_gap is not None:
        planted = _plant(cfg, world, b, lengths, offsets, slot_topic, top_topic, user, item)

    # Feedback.
    item_topic = world.item_topic[item]
    theta_at = (slot_weight[user] * (slot_topic[user] == item_topic[:, None])).sum(1)  # (E_b,)
    affinity = theta_at / theta_max[user]
    if planted is not None:
        affinity[planted.events] = 1.0
    logit = _WATCH_BIAS + _WATCH_AFFINITY * affinity + world.quality[item] + _WATCH_NOISE * noise
    duration = world.duration[item]  # float32
    watch = (duration.astype(np.float64) / (1.0 + np.exp(-logit))).astype(np.float32)
    label = (
        watch.astype(np.float64) >= cfg.effective_view_ratio * duration.astype(np.float64)
    ).astype(np.float32)

    # Time: gaps after the previous event, cumulated per user.
    delta = np.empty(n_events, dtype=np.int64)
    delta[1:] = np.ceil(watch[:-1]).astype(np.int64) + overhead[1:].astype(np.int64)
    delta[new_session] = session_gap.astype(np.int64)
    delta[starts] = first_time.astype(np.int64)
    csum = np.cumsum(delta)
    timestamp = csum - (csum[starts] - delta[starts])[user]

    events = pa.table(
        {
            "user_id": pa.array(u0 + user),
            "item_id": pa.array(item + 1),
            "timestamp": pa.array(timestamp),
            "session": pa.array(session),
            "watch_time": pa.array(watch),
            "label": pa.array(label),
        },
        schema=_INTERACTIONS_SCHEMA,
    )

    columns: dict[str, pa.Array] = {"user_id": pa.array(np.arange(u0, u0 + nu, dtype=np.int64))}
    if cfg.user_features:
        median = cfg.median_length
        activity = (lengths >= median / 2).astype(np.int64) + (lengths >= 2 * median)
        columns["age_bucket"] = pa.array(np.array(_AGE_BUCKETS)[age])
        columns["gender"] = pa.array(np.array(_GENDERS)[gender])
        columns["activity"] = pa.array(np.array(_ACTIVITY)[activity])
    columns["top_topic"] = pa.array(top_topic.astype(np.int32))
    if planted is not None:
        mask = np.ones(nu, dtype=bool)
        mask[planted.users] = False
        for name, values in (
            ("planted_topic", planted.topic),
            ("planted_at", planted.at),
            ("planted_return_at", planted.at + cfg.planted_burst + cfg.planted_return_gap),
        ):
            full = np.zeros(nu, dtype=np.int32)
            full[planted.users] = values
            columns[name] = pa.array(full, mask=mask)
    users = pa.table(columns, schema=_users_schema(cfg))
    return events, users


# -- public API -----------------------------------------------------------------------------------


def _build(
    cfg: SyntheticConfig, inter: pl.DataFrame, items: pl.DataFrame, users: pl.DataFrame
) -> InteractionData:
    return build_dataset(
        name=NAME,
        interactions=inter,
        items=items,
        users=users,
        order="time",
        keep_unseen_items=True,  # the whole catalogue, with its ground-truth topics
        meta={"synthetic_config": asdict(cfg)},
    )


def generate(config: SyntheticConfig | None = None) -> InteractionData:
    """Generate the dataset in memory (see the module docstring for the process).

    Args:
        config: the parameters; the quickstart defaults when None.

    Returns:
        The canonical dataset. ``interactions`` has ``user``, ``item``, ``timestamp`` (epoch s),
        ``session`` (Int32, 0-based per user), ``watch_time`` (Float32 s), ``label`` (Float32 0/1);
        ``items`` has ``title``, ``category`` (``"l1/l2"``), ``category_l1``, ``category_l2``,
        ``duration``, ``topic`` (ground truth); ``users`` has ``top_topic`` (ground truth), the
        optional features and the planted-interest columns. Raw IDs: items 1..N, users 0..U-1.
    """
    cfg = config or SyntheticConfig()
    world = _build_world(cfg)
    blocks = [_block_tables(cfg, world, b) for b in range(_n_blocks(cfg))]
    inter = pl.from_arrow(pa.concat_tables([e for e, _ in blocks]))
    users = pl.from_arrow(pa.concat_tables([u for _, u in blocks]))
    items = pl.from_arrow(_items_table(cfg, world))
    assert (
        isinstance(inter, pl.DataFrame)
        and isinstance(users, pl.DataFrame)
        and isinstance(items, pl.DataFrame)
    )
    data = _build(cfg, inter, items, users)
    log.info("generated %r", data)
    return data


def _json_scalar(value: Any) -> Any:
    if isinstance(value, np.generic):  # a NumPy integer or float given as a config value
        return value.item()
    raise TypeError(f"cannot store {value!r} in JSON")


def write_parquet(
    config: SyntheticConfig,
    out_dir: str | os.PathLike[str],
    *,
    chunk_users: int = 16_384,
    progress: Callable[[int, int], None] | None = None,
) -> SyntheticFiles:
    """Stream the dataset to ``out_dir/{interactions,items,users}.parquet`` in bounded memory.

    Users are generated ``chunk_users`` at a time (rounded up to whole blocks of ``BLOCK_USERS``)
    and each chunk is written as one Parquet row group, so memory stays around a few hundred bytes
    per event of one chunk whatever the total size (about 250 MB peak with the default for 10^7
    or 10^8 events). The content does not depend on ``chunk_users``.
    Files are written under temporary names in ``out_dir`` and renamed into place at the end, so an
    interrupted run leaves no partial file behind. The config is stored as JSON in each file's
    schema metadata (key ``shortlist.synthetic.config``).

    Args:
        config: the parameters.
        out_dir: the directory (created if missing).
        chunk_users: users generated and written per step.
        progress: called after each step with (events written, total events).

    Returns:
        The paths and row counts.
    """
    bad = (
        "The 'chunk_users' parameter of write_parquet must be an int >= 1. "
        f"Got {chunk_users!r} instead."
    )
    if isinstance(chunk_users, bool) or not isinstance(chunk_users, int):
        raise TypeError(bad)
    if chunk_users < 1:
        raise ValueError(bad)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    meta = {META_KEY: json.dumps(asdict(config), default=_json_scalar).encode()}
    names = ("interactions", "items", "users")
    final = {n: out / f"{n}.parquet" for n in names}
    tmp = {n: out / f".{n}.parquet.tmp-{os.getpid()}" for n in names}
    total = count_events(config)
    per_chunk = -(-chunk_users // BLOCK_USERS)
    done = 0
    try:
        world = _build_world(config)
        pq.write_table(
            _items_table(config, world).replace_schema_metadata(meta),
            tmp["items"],
            compression="zstd",
        )
        with (
            pq.ParquetWriter(
                tmp["interactions"], _INTERACTIONS_SCHEMA.with_metadata(meta), compression="zstd"
            ) as ew,
            pq.ParquetWriter(
                tmp["users"], _users_schema(config).with_metadata(meta), compression="zstd"
            ) as uw,
        ):
            for first in range(0, _n_blocks(config), per_chunk):
                blocks = [
                    _block_tables(config, world, b)
                    for b in range(first, min(first + per_chunk, _n_blocks(config)))
                ]
                events = pa.concat_tables([e for e, _ in blocks])
                ew.write_table(
                    events.replace_schema_metadata(meta), row_group_size=max(events.num_rows, 1)
                )
                uw.write_table(
                    pa.concat_tables([u for _, u in blocks]).replace_schema_metadata(meta)
                )
                done += events.num_rows
                del blocks, events
                if progress is not None:
                    progress(done, total)
        assert done == total, (done, total)
        for n in names:
            os.replace(tmp[n], final[n])
    except BaseException:
        for path in tmp.values():
            path.unlink(missing_ok=True)
        raise
    log.info(
        "wrote %s events of %s users to %s in %.1f s",
        f"{done:,}",
        f"{config.n_users:,}",
        out,
        time.perf_counter() - began,
    )
    return SyntheticFiles(
        directory=out,
        interactions=final["interactions"],
        items=final["items"],
        users=final["users"],
        n_events=done,
        n_users=config.n_users,
        n_items=config.n_items,
        config=config,
    )


def read_config(path: str | os.PathLike[str]) -> SyntheticConfig:
    """The config stored in a Parquet file written by :func:`write_parquet`."""
    metadata = pq.read_schema(path).metadata or {}
    if META_KEY not in metadata:
        raise ValueError(
            f"{path}: no {META_KEY.decode()!r} metadata; not written by write_parquet."
        )
    return SyntheticConfig(**json.loads(metadata[META_KEY]))


def read_parquet(out_dir: str | os.PathLike[str]) -> InteractionData:
    """Load what :func:`write_parquet` wrote into ``out_dir``, equal to ``generate(config)``."""
    out = Path(out_dir)
    cfg = read_config(out / "interactions.parquet")
    frames = {n: pl.read_parquet(out / f"{n}.parquet") for n in ("interactions", "items", "users")}
    return _build(cfg, frames["interactions"], frames["items"], frames["users"])


# -- long histories with planted long-range interests --------------------------------------------
#
# A lean, vectorised generator for sequence-length work (ELASTIC / KSA, issue 4): users with
# 10^4-10^5 events and planted long-range dependencies with per-event ground truth. It returns
# NumPy arrays (no tables, no item text, no feedback, no repeat avoidance), so 10^3 users x 10^4
# events take seconds. Process per user u (same world of items and topics as above):
#
#   1. L_u ~ log-uniform integer in [min_length, max_length]; m interest slots and Dirichlet
#      weights as in step 2 above (without user features); sessions, focus topics, exploration and
#      items as in steps 3-4 (repeats allowed: re-watches are common in 10^4-event feeds).
#   2. Planting (users with L_u >= B + G + R, each with probability ``planted_fraction``): a topic
#      p outside the user's slots (never drawn otherwise, except by exploration, which is redrawn
#      from the user's top topic inside the gap); B burst events of topic p at [P, P + B); no event
#      of p during the next G events; R return events drawn from p at [P + B + G, P + B + G + R).
#      P is uniform over the feasible starts, or P = L_u - (B + G + R) with ``planted_at_end``
#      (the return burst ends the history: leave-one-out's test target is a return event). With
#      ``planted_repeat`` the R return events re-consume the burst's own items (each a uniform draw
#      from the B burst events, drawn after everything else so the rest of the data is unchanged):
#      the user comes back to the very items of the old interest, which only a model that still
#      sees the burst can name; without it they are fresh draws from p, which one return event in
#      view already reveals as well as the burst does.
#   2b. ``planted_extra`` = X > 0 (drawn after everything else, so the data above are unchanged):
#      each planted user gets X more interests planted the same way (burst, gap, return, repeats),
#      each with a topic of its own outside the slots and the first planted topic, at a start drawn
#      uniformly among those whose burst and return events fall on ordinary events (up to 64
#      tries; an interest that finds none is left out); exploration hits of its topic inside its
#      gap are redrawn from the top topic, ordinary events only. With one planted interest, 4 of
#      10^4 training targets can be named by copying from a burst 5,000 events back, too few to
#      learn from; X = 20 makes it about 80. The per-user ground truth below stays the first one.
#   3. Ground truth: ``kind`` per event (0 ordinary, 1 burst, 2 return = the target is drawn from
#      an interest last seen more than G events earlier), and per user ``planted_topic``,
#      ``planted_at`` = P and ``return_at`` = P + B + G (-1 for users without one).
#
# Determinism: users come in blocks of ``LONG_BLOCK_USERS``, block b from the stream
# SeedSequence(seed, spawn_key=(4, b)), so the data depend only on the config, never on how many
# blocks are held in memory (:func:`iter_long_history_blocks` streams them).

from shortlist.data.sequences import Jagged  # noqa: E402  (used only by this section)

LONG_BLOCK_USERS = 64  # users per random stream of the long-history generator: do not change
_LONG_STREAM = 4
EVENT_ORDINARY, EVENT_BURST, EVENT_RETURN = 0, 1, 2


def _bad_long(name: str, expected: str, value: Any) -> str:
    return f"The {name!r} parameter of LongHistoryConfig must be {expected}. Got {value!r} instead."


@dataclass(frozen=True)
class LongHistoryConfig:
    """Parameters of the long-history generator (defaults: 1,000 users x 10^4 events, one planted
    interest returning after 5,000 events for half of them)."""

    n_users: int = 1_000
    n_items: int = 10_000
    n_topics: int = 50
    min_length: int = 10_000  # L_u log-uniform in [min_length, max_length]
    max_length: int = 10_000
    zipf_exponent: float = 0.8
    topics_per_user: int = 3
    topic_concentration: float = 0.5
    explore_ratio: float = 0.1
    session_focus: float = 0.8
    mean_session_length: float = 8.0
    planted_fraction: float = 0.5  # share of long-enough users that get a returning interest
    planted_burst: int = 20  # B: events of the planted topic at its first appearance
    planted_gap: int = 5_000  # G: events without it before it returns
    planted_return: int = 5  # R: events drawn from it at the return
    planted_at_end: bool = False  # the return burst ends the history
    planted_repeat: bool = False  # return events re-consume burst items instead of fresh draws
    planted_extra: int = 0  # more planted interests per planted user (training signal, see step 2b)
    seed: int = 0

    def __post_init__(self) -> None:
        ints = (
            ("n_users", 1), ("n_items", self.n_topics), ("n_topics", self.topics_per_user + 1),
            ("min_length", 1), ("max_length", self.min_length), ("topics_per_user", 1),
            ("planted_burst", 1), ("planted_gap", 1), ("planted_return", 1), ("seed", 0),
            ("planted_extra", 0),
        )  # fmt: skip
        for name, low in ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise TypeError(_bad_long(name, f"an int >= {low}", value))
            if value < low:
                raise ValueError(_bad_long(name, f"an int >= {low}", value))
        floats = (
            ("zipf_exponent", 0.0, 5.0), ("topic_concentration", 1e-9, math.inf),
            ("explore_ratio", 0.0, 1.0), ("session_focus", 0.0, 1.0),
            ("mean_session_length", 1.0, math.inf), ("planted_fraction", 0.0, 1.0),
        )  # fmt: skip
        for name, low, high in floats:
            value = getattr(self, name)
            expected = f"a float in [{low:g}, {high:g}]"
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise TypeError(_bad_long(name, expected, value))
            if not low <= value <= high or math.isnan(value):
                raise ValueError(_bad_long(name, expected, value))
        for name in ("planted_at_end", "planted_repeat"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(_bad_long(name, "a bool", getattr(self, name)))
        free_topics = self.n_topics - self.topics_per_user - 1  # outside the slots and the first
        if self.planted_extra > free_topics:
            raise ValueError(
                _bad_long(
                    "planted_extra",
                    f"at most n_topics - topics_per_user - 1 = {free_topics} (each extra interest "
                    "needs a topic of its own outside the user's slots)",
                    self.planted_extra,
                )
            )

    @property
    def planted_span(self) -> int:
        """B + G + R: events a planted interest needs."""
        return self.planted_burst + self.planted_gap + self.planted_return


@dataclass(frozen=True)
class LongHistoryData:
    """Long histories and their planted ground truth (U users, E events, N items).

    sequences: U time-ordered sequences of items 1..N (values (E,), offsets (U+1,)).
    kind: (E,) int8 per event: 0 ordinary, 1 planted burst, 2 return (long-range target).
    item_topic: (N+1,) int32 topic of each item; -1 at index 0 (padding).
    planted_topic, planted_at, return_at: (U,) int64; -1 for users without a planted interest.
    """

    config: LongHistoryConfig
    sequences: Jagged
    kind: np.ndarray
    item_topic: np.ndarray
    planted_topic: np.ndarray
    planted_at: np.ndarray
    return_at: np.ndarray

    @property
    def num_events(self) -> int:
        return len(self.sequences.values)


@dataclass(frozen=True)
class LongRangeExamples:
    """Evaluation examples cut from long histories: predict ``targets[i]`` from the first
    ``cuts[i]`` events of user ``users[i]``; ``long_range[i]`` says whether the target is the
    first return event of a planted interest (else an ordinary event of a planted user)."""

    users: np.ndarray  # (X,) int64
    cuts: np.ndarray  # (X,) int64 history length
    targets: np.ndarray  # (X,) int64 item 1..N
    long_range: np.ndarray  # (X,) bool

    def histories(self, data: LongHistoryData, max_len: int | None = None) -> Jagged:
        """The X histories (the most recent ``max_len`` events of each prefix when given)."""
        start = data.sequences.offsets[self.users].astype(np.int64)
        end = start + self.cuts
        if max_len is not None:
            start = np.maximum(start, end - max_len)
        lengths = end - start
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        index = np.repeat(start - offsets[:-1], lengths) + np.arange(offsets[-1])
        return Jagged(data.sequences.values[index], offsets)


def _world_of(cfg: LongHistoryConfig) -> _World:
    """The items and topics of the long-history data: the world of the matching SyntheticConfig."""
    return _build_world(
        SyntheticConfig(
            n_users=1, n_items=cfg.n_items, n_topics=cfg.n_topics, n_categories=1,
            zipf_exponent=cfg.zipf_exponent, user_features=False, seed=cfg.seed,
        )
    )  # fmt: skip


def _long_block(
    cfg: LongHistoryConfig, world: _World, b: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Block b: (lengths, items 1..N, kind, planted topic, planted at, return at)."""
    rng = _rng(cfg.seed, _LONG_STREAM, b)
    u0 = b * LONG_BLOCK_USERS
    nu, m, k = min(cfg.n_users - u0, LONG_BLOCK_USERS), cfg.topics_per_user, cfg.n_topics
    lo, hi = math.log(cfg.min_length), math.log(cfg.max_length + 1)
    lengths = np.minimum(
        np.exp(lo + rng.random(nu) * (hi - lo)).astype(np.int64), cfg.max_length
    )  # (U_b,)
    offsets = np.zeros(nu + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    starts, n_events = offsets[:-1], int(offsets[-1])
    # Interests: m slots from the topic prior, Dirichlet weights.
    slot_pos = _sample_segments(
        world.group_cdf, world.group_end, np.zeros((nu, m), dtype=np.int64), rng.random((nu, m))
    )
    slot_topic = slot_pos  # (U_b, m): one group, so positions are topics
    gam = rng.standard_gamma(cfg.topic_concentration, (nu, m))
    gam[gam.sum(1) == 0, 0] = 1.0
    slot_weight = gam / gam.sum(1, keepdims=True)
    slot_cum = np.cumsum(slot_weight, 1)
    slot_cum[:, -1] = 1.0
    top_topic = slot_topic[np.arange(nu), slot_weight.argmax(1)]
    # Sessions and events.
    user = np.repeat(np.arange(nu), lengths)  # (E_b,)
    new_session = rng.random(n_events) < 1.0 / cfg.mean_session_length
    new_session[starts] = True
    session_index = np.cumsum(new_session) - 1
    session_user = user[new_session]
    focus = slot_topic[
        session_user, _draw_slot(slot_cum[session_user], rng.random(len(session_user)))
    ]
    fresh = slot_topic[user, _draw_slot(slot_cum[user], rng.random(n_events))]
    topic = np.where(rng.random(n_events) < cfg.session_focus, focus[session_index], fresh)
    explore = rng.random(n_events) < cfg.explore_ratio
    item = _draw_items(world, topic, explore, rng.random(n_events))  # (E_b,) 0-based
    kind = np.zeros(n_events, dtype=np.int8)
    # Planting.
    span, burst, gap = cfg.planted_span, cfg.planted_burst, cfg.planted_gap
    chosen = np.flatnonzero((lengths >= span) & (rng.random(nu) < cfg.planted_fraction))
    draws = rng.random((3, len(chosen)))  # start, topic, and a spare column: fixed stream layout
    if cfg.planted_at_end:
        at = lengths[chosen] - span
    else:
        at = np.floor(draws[0] * (lengths[chosen] - span + 1)).astype(np.int64)
    slots = np.sort(slot_topic[chosen], axis=1)  # (P, m)
    dup = np.zeros_like(slots, dtype=bool)
    dup[:, 1:] = slots[:, 1:] == slots[:, :-1]
    slots = np.where(dup, k, slots)
    choice = np.floor(draws[1] * (k - (~dup).sum(1))).astype(np.int64)
    for j in range(m):  # the choice-th topic outside the user's slots
        choice += choice >= slots[:, j]
    first = starts[chosen] + at  # (P,) block event index of the first burst event
    returns = first + burst + gap  # (P,)
    planted_events = np.concatenate(
        [first[:, None] + np.arange(burst), returns[:, None] + np.arange(cfg.planted_return)], 1
    )  # (P, B + R)
    kind[planted_events[:, :burst]] = EVENT_BURST
    kind[planted_events[:, burst:]] = EVENT_RETURN
    p_topic = np.repeat(choice, burst + cfg.planted_return)
    item[planted_events.ravel()] = _topic_draws(world, p_topic, rng.random(p_topic.size))
    # No event of p in the gap: exploration hits are redrawn from the user's top topic.
    between = ((first + burst)[:, None] + np.arange(gap)).ravel()  # (P G,)
    owner = np.repeat(np.arange(len(chosen)), gap)
    hit = world.item_topic[item[between]] == choice[owner]
    redo = between[hit]
    item[redo] = _topic_draws(world, top_topic[chosen[owner[hit]]], rng.random(redo.size))
    if cfg.planted_repeat:  # drawn last, so that the stream above is the same either way
        pick = np.floor(rng.random((len(chosen), cfg.planted_return)) * burst).astype(np.int64)
        item[planted_events[:, burst:]] = item[first[:, None] + pick]  # (P, R) from the burst
    if cfg.planted_extra:
        _plant_extra(cfg, world, rng, starts[chosen], lengths[chosen], slot_topic[chosen], choice,
                     top_topic[chosen], item, kind)  # fmt: skip
    planted_topic = np.full(nu, -1, dtype=np.int64)
    planted_at = np.full(nu, -1, dtype=np.int64)
    return_at = np.full(nu, -1, dtype=np.int64)
    planted_topic[chosen], planted_at[chosen], return_at[chosen] = choice, at, at + burst + gap
    return lengths, item + 1, kind, planted_topic, planted_at, return_at, top_topic


def _plant_extra(
    cfg: LongHistoryConfig,
    world: _World,
    rng: np.random.Generator,
    starts: np.ndarray,
    lengths: np.ndarray,
    slots: np.ndarray,
    first_topic: np.ndarray,
    top_topic: np.ndarray,
    item: np.ndarray,
    kind: np.ndarray,
) -> None:
    """Step 2b in place: ``planted_extra`` more interests for each of the P planted users (starts,
    lengths, first_topic, top_topic: (P,); slots: (P, m); item 0-based and kind: (E_b,))."""
    burst, gap, ret, span = cfg.planted_burst, cfg.planted_gap, cfg.planted_return, cfg.planted_span
    offsets = np.concatenate([np.arange(burst), burst + gap + np.arange(ret)])  # (B + R,)
    for u in range(len(starts)):
        taken = np.zeros(cfg.n_topics, dtype=bool)
        taken[slots[u]] = True
        taken[first_topic[u]] = True
        topics = rng.permutation(np.flatnonzero(~taken))[: cfg.planted_extra]
        tries = np.floor(rng.random((len(topics), 64)) * (lengths[u] - span + 1)).astype(np.int64)
        for p, cand in zip(topics, tries, strict=True):
            events = starts[u] + cand[:, None] + offsets  # (64, B + R)
            free = (kind[events] == EVENT_ORDINARY).all(1)
            if not free.any():
                continue
            planted = events[int(np.argmax(free))]  # (B + R,)
            kind[planted[:burst]], kind[planted[burst:]] = EVENT_BURST, EVENT_RETURN
            item[planted] = _topic_draws(world, np.full(burst + ret, p), rng.random(burst + ret))
            between = np.arange(planted[burst - 1] + 1, planted[burst])  # (G,) the gap
            hit = between[
                (world.item_topic[item[between]] == p) & (kind[between] == EVENT_ORDINARY)
            ]
            item[hit] = _topic_draws(world, np.full(len(hit), top_topic[u]), rng.random(len(hit)))
            if cfg.planted_repeat:
                pick = np.floor(rng.random(ret) * burst).astype(np.int64)
                item[planted[burst:]] = item[planted[pick]]


def iter_long_history_blocks(config: LongHistoryConfig) -> Iterator[LongHistoryData]:
    """Stream the data ``LONG_BLOCK_USERS`` users at a time (bounded memory); their
    concatenation is :func:`generate_long_histories` (user indices restart at 0 in each block)."""
    world = _world_of(config)
    item_topic = np.concatenate([[-1], world.item_topic]).astype(np.int32)
    for b in range(-(-config.n_users // LONG_BLOCK_USERS)):
        lengths, items, kind, p_topic, p_at, r_at, _ = _long_block(config, world, b)
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        yield LongHistoryData(
            config=config,
            sequences=Jagged(items, offsets),
            kind=kind,
            item_topic=item_topic,
            planted_topic=p_topic,
            planted_at=p_at,
            return_at=r_at,
        )


def generate_long_histories(config: LongHistoryConfig | None = None) -> LongHistoryData:
    """Generate long histories with planted long-range interests (see the section comment).

    Example:
        >>> data = generate_long_histories(LongHistoryConfig(n_users=4, n_items=200, n_topics=8,
        ...     min_length=300, max_length=300, planted_gap=100, planted_fraction=1.0))
        >>> data.num_events, int((data.kind == EVENT_RETURN).sum())
        (1200, 20)
    """
    cfg = config or LongHistoryConfig()
    began = time.perf_counter()
    blocks = list(iter_long_history_blocks(cfg))
    lengths = np.concatenate([blk.sequences.lengths for blk in blocks])
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = LongHistoryData(
        config=cfg,
        sequences=Jagged(np.concatenate([blk.sequences.values for blk in blocks]), offsets),
        kind=np.concatenate([blk.kind for blk in blocks]),
        item_topic=blocks[0].item_topic,
        planted_topic=np.concatenate([blk.planted_topic for blk in blocks]),
        planted_at=np.concatenate([blk.planted_at for blk in blocks]),
        return_at=np.concatenate([blk.return_at for blk in blocks]),
    )
    log.info(
        "generated %s long-history events of %s users in %.1f s",
        f"{data.num_events:,}", f"{cfg.n_users:,}", time.perf_counter() - began,
    )  # fmt: skip
    return data


def long_range_examples(
    data: LongHistoryData, *, controls: int = 1, seed: int = 0
) -> LongRangeExamples:
    """Evaluation examples of every planted user: its first return event (``long_range=True``),
    plus ``controls`` ordinary events after the burst (``long_range=False``), cut at their
    positions, so recall on the two groups measures the recovery of long-range interests."""
    if isinstance(controls, bool) or not isinstance(controls, int) or controls < 0:
        raise ValueError(
            f"The 'controls' parameter of long_range_examples must be an int >= 0. "
            f"Got {controls!r} instead."
        )
    rng = np.random.default_rng(seed)
    planted = np.flatnonzero(data.planted_topic >= 0)
    seq = data.sequences
    users, cuts = [planted], [data.return_at[planted]]
    flags = [np.ones(len(planted), dtype=bool)]
    lo = data.planted_at[planted] + data.config.planted_burst  # first event after the burst
    span = seq.lengths[planted] - lo
    for _ in range(controls):
        pos = lo + np.floor(rng.random(len(planted)) * span).astype(np.int64)
        ordinary = data.kind[seq.offsets[planted] + pos] == EVENT_ORDINARY
        users.append(planted[ordinary])
        cuts.append(pos[ordinary])
        flags.append(np.zeros(int(ordinary.sum()), dtype=bool))
    u, c = np.concatenate(users).astype(np.int64), np.concatenate(cuts).astype(np.int64)
    return LongRangeExamples(
        users=u,
        cuts=c,
        targets=seq.values[seq.offsets[u] + c].astype(np.int64),
        long_range=np.concatenate(flags),
    )
