"""Evaluation protocols: how a dataset is split into training, validation and test data.

Each protocol matches an anchor of ``../shared/reference/ANCHORS.md`` exactly; results are only
comparable with an anchor under its own protocol.

| name | what | anchor |
|---|---|---|
| ``hstu`` (``leave_one_out``) | per user, by time: test = last event, validation = second-to-last, training = the rest; evaluation histories are all earlier events | HSTU / generative-recommenders on ML-1M, ML-20M, Books (ANCHORS.md section 1); SASRec |
| ``tiger`` | the same leave-one-out, with every evaluation history capped at the 20 most recent items | TIGER on Amazon Beauty / Sports / Toys (section 2) |
| ``random`` | interactions shuffled globally and cut 8:1:1 | RecBole's ML-1M CTR benchmark (section 3) |
| ``temporal`` | interactions sorted by time globally and cut 8:1:1 (or at given timestamps) | global temporal evaluation, no future leakage |

Users with fewer than 3 events keep all of them for training and get no validation or test
example (the SASRec convention). Sequential protocols need a per-user order: they refuse datasets
with ``order == "none"`` (e.g. the partial ML-1M copy without timestamps).

Notation: U users, E events, H history cap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from shortlist.data.schema import ITEM, TIME, USER, InteractionData
from shortlist.data.sequences import EvalExamples, Jagged, SequenceSplit, segment_indices
from shortlist.registry import Registry


@dataclass(frozen=True)
class RowSplit:
    """A split of interaction rows (for CTR / rating models): three frames with the dataset's schema."""

    protocol: str
    train: pl.DataFrame
    valid: pl.DataFrame
    test: pl.DataFrame

    def summary(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "train": self.train.height,
            "valid": self.valid.height,
            "test": self.test.height,
        }


def _require_order(data: InteractionData, protocol: str) -> None:
    if data.order == "none":
        raise ValueError(
            f"The {protocol!r} protocol needs each user's events in time order, but dataset {data.name!r} has "
            f"order='none' (no timestamps and no chronological file order"
            f"{'; for ml-1m, provide the official ratings.dat with timestamps' if data.name == 'ml-1m' else ''}). "
            "Use the 'random' protocol, or a dataset with timestamps."
        )


def _examples(
    data: InteractionData,
    users: np.ndarray,
    target_pos: np.ndarray,
    offsets: np.ndarray,
    max_history: int | None,
) -> EvalExamples:
    """Examples whose target is at absolute row ``target_pos`` and whose history precedes it."""
    starts = offsets[users]
    if max_history is not None:
        starts = np.maximum(starts, target_pos - max_history)
    idx = segment_indices(starts, target_pos)
    lengths = target_pos - starts
    items = data.interactions[ITEM].to_numpy()
    hist_t = tgt_t = None
    if data.has_timestamps:
        times = data.interactions[TIME].to_numpy()
        hist_t = Jagged.from_lengths(times[idx], lengths)
        tgt_t = times[target_pos]
    return EvalExamples(
        users=users.astype(np.int32),
        history=Jagged.from_lengths(items[idx], lengths),
        targets=items[target_pos].astype(np.int32),
        history_timestamps=hist_t,
        target_timestamps=tgt_t,
    )


def leave_one_out(
    data: InteractionData, *, max_history: int | None = None, protocol: str = "hstu"
) -> SequenceSplit:
    """Per-user leave-one-out by time (see the module docstring).

    Args:
        max_history: cap H on evaluation histories (TIGER: 20); training sequences are not cut here
            (the batcher keeps the most recent ``max_len`` items).
    """
    _require_order(data, protocol)
    if max_history is not None and max_history < 1:
        raise ValueError(
            f"The 'max_history' parameter of leave_one_out must be an int >= 1 or None. Got {max_history} instead."
        )
    offsets = data.offsets()
    lengths = np.diff(offsets)
    has_users = np.flatnonzero(lengths > 0)
    evaluated = np.flatnonzero(lengths >= 3)
    train_len = np.where(lengths >= 3, lengths - 2, lengths)[has_users]
    idx = segment_indices(offsets[has_users], offsets[has_users] + train_len)
    items = data.interactions[ITEM].to_numpy()
    train = Jagged.from_lengths(items[idx], train_len)
    train_t = (
        Jagged.from_lengths(data.interactions[TIME].to_numpy()[idx], train_len)
        if data.has_timestamps
        else None
    )
    ends = offsets[evaluated + 1]
    return SequenceSplit(
        protocol=protocol,
        num_items=data.num_items,
        train_users=has_users.astype(np.int32),
        train=train,
        train_timestamps=train_t,
        valid=_examples(data, evaluated, ends - 2, offsets, max_history),
        test=_examples(data, evaluated, ends - 1, offsets, max_history),
        max_history=max_history,
    )


def tiger_split(data: InteractionData, *, max_history: int = 20) -> SequenceSplit:
    """TIGER protocol: leave-one-out with evaluation histories capped at 20 items (Rajput et al. 2023)."""
    return leave_one_out(data, max_history=max_history, protocol="tiger")


def long_split(data: InteractionData) -> SequenceSplit:
    """The ``long`` protocol: leave-one-out with whole evaluation histories (TIGER's metrics
    without its 20-item cap, ``shortlist.eval.protocols``)."""
    return leave_one_out(data, protocol="long")


def training_interactions(data: InteractionData) -> InteractionData:
    """``data`` without each user's last two events: the training part of the leave-one-out split
    (users with fewer than 3 events are never evaluated and keep all of theirs).

    Whatever is learned from behaviour before training a model (Swing neighbours, QARM pairs,
    co-occurrence embeddings, semantic IDs) is learned from this, so that no validation or test
    event shapes it. Events stay oldest first per user (``order="sequence"``), without timestamps.
    """
    split = leave_one_out(data)
    train = split.train
    users = np.repeat(split.train_users, train.lengths).astype(np.int32)
    interactions = pl.DataFrame(
        {USER: users, ITEM: train.values.astype(np.int32)},
        schema={USER: pl.Int32, ITEM: pl.Int32},
    )
    return InteractionData(
        name=f"{data.name}/train",
        interactions=interactions,
        items=data.items,
        users=data.users,
        order="sequence",
    )


def _check_ratios(ratios: tuple[float, float, float]) -> None:
    if len(ratios) != 3 or min(ratios) < 0 or not np.isclose(sum(ratios), 1.0) or ratios[0] <= 0:
        raise ValueError(
            f"The 'ratios' parameter must be three non-negative fractions summing to 1 with a positive "
            f"training share. Got {ratios} instead."
        )


def _cut(n: int, ratios: tuple[float, float, float]) -> tuple[int, int]:
    n_train = round(n * ratios[0])
    n_valid = round(n * ratios[1])
    return n_train, min(n, n_train + n_valid)


def random_split(
    data: InteractionData, *, ratios: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0
) -> RowSplit:
    """Global random split of interaction rows (RecBole's ``RS: [0.8, 0.1, 0.1]`` with ``order: RO``)."""
    _check_ratios(ratios)
    n = data.num_interactions
    perm = np.random.default_rng(seed).permutation(n)
    a, b = _cut(n, ratios)
    frame = data.interactions
    take = lambda rows: frame[np.sort(rows)]  # noqa: E731 - keep each part in the dataset's row order
    return RowSplit("random", take(perm[:a]), take(perm[a:b]), take(perm[b:]))


def temporal_split(
    data: InteractionData,
    *,
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
    cutoffs: tuple[int, int] | None = None,
) -> RowSplit:
    """Global temporal split: the earliest events train, the latest test.

    Args:
        ratios: shares of events by global time order (ties broken by row order), or
        cutoffs: timestamps (t1, t2): train = time < t1, valid = t1 <= time < t2, test = time >= t2.
    """
    if not data.has_timestamps:
        raise ValueError(
            f"The 'temporal' protocol needs timestamps, but dataset {data.name!r} has none for some events."
        )
    frame = data.interactions
    times = frame[TIME].to_numpy()
    if cutoffs is not None:
        t1, t2 = cutoffs
        if t1 > t2:
            raise ValueError(
                f"The 'cutoffs' parameter must be increasing timestamps. Got {cutoffs} instead."
            )
        return RowSplit(
            "temporal",
            frame.filter(pl.col(TIME) < t1),
            frame.filter((pl.col(TIME) >= t1) & (pl.col(TIME) < t2)),
            frame.filter(pl.col(TIME) >= t2),
        )
    _check_ratios(ratios)
    order = np.argsort(times, kind="stable")
    a, b = _cut(len(order), ratios)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return RowSplit(
        "temporal",
        frame.filter(pl.Series(rank < a)),
        frame.filter(pl.Series((rank >= a) & (rank < b))),
        frame.filter(pl.Series(rank >= b)),
    )


SPLITS: Registry[Any] = Registry("protocol")
SPLITS.add("hstu", leave_one_out)
SPLITS.add("leave_one_out", leave_one_out)
SPLITS.add("tiger", tiger_split)
SPLITS.add("long", long_split)
SPLITS.add("random", random_split)
SPLITS.add("temporal", temporal_split)


def split(data: InteractionData, protocol: str, **kwargs: Any) -> SequenceSplit | RowSplit:
    """Split ``data`` by a protocol name (``hstu``, ``tiger``, ``long``, ``random``, ``temporal``)."""
    return SPLITS.get(protocol)(data, **kwargs)


__all__ = [
    "SPLITS",
    "EvalExamples",
    "RowSplit",
    "SequenceSplit",
    "leave_one_out",
    "long_split",
    "random_split",
    "segment_indices",
    "split",
    "temporal_split",
    "tiger_split",
]
