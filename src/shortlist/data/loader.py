"""A ``torch.utils.data`` pipeline that builds whole next-item training batches.

Notation:
    B   sequences (rows) in a batch
    L   padded length of a batch (``max_len``)
    K   sampled negatives (per position, per row or per batch)
    N   number of items: item indices are 1..N and 0 is padding
    U   rows (users) of the training sequences

:class:`SequenceBatchSampler` yields one :class:`BatchKey` (epoch, batch index, rank, rows) per
batch; :class:`SequenceBatchDataset` turns a key into a whole batch with the builders of
:mod:`shortlist.data.batches` (in a worker process when ``num_workers > 0``); :func:`make_loader`
wires them into a :class:`SequenceLoader`. Negatives of a batch are drawn from a generator seeded
by ``(seed, epoch, rank, batch index)``, so batches do not depend on the number of workers.
:func:`batch_throughput` measures how fast the loader delivers batches.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from shortlist.data._checks import _check_choice, _check_int
from shortlist.data.batches import (
    JaggedSequenceBatch,
    NegativesPer,
    SequenceBatch,
    _check_build_args,
    build_jagged_sequence_batch,
    build_sequence_batch,
)
from shortlist.data.jagged import SIDES, Side
from shortlist.data.negatives import NegativeSampler
from shortlist.data.sequences import Jagged

log = logging.getLogger(__name__)

Layout = Literal["padded", "jagged"]

LAYOUTS: tuple[str, ...] = ("padded", "jagged")

__all__ = [
    "BatchKey",
    "SequenceBatchDataset",
    "SequenceBatchSampler",
    "SequenceLoader",
    "batch_throughput",
    "make_loader",
]


@dataclass(frozen=True)
class BatchKey:
    """What the sampler hands the dataset: everything that determines one batch.

    Attributes:
        epoch: the epoch (seeds the permutation and the negatives).
        index: batch number within the epoch on this rank.
        rank: the DDP rank that builds this batch.
        rows: (B,) rows of the training sequences.
    """

    epoch: int
    index: int
    rank: int
    rows: np.ndarray


def _resolve_rank(rank: int | None, world_size: int | None) -> tuple[int, int]:
    dist = torch.distributed
    initialized = dist.is_available() and dist.is_initialized()
    if world_size is None:
        world_size = dist.get_world_size() if initialized else 1
    if rank is None:
        rank = dist.get_rank() if initialized else 0
    world_size = _check_int(world_size, "world_size", "SequenceBatchSampler", low=1)
    rank = _check_int(rank, "rank", "SequenceBatchSampler", low=0)
    if rank >= world_size:
        raise ValueError(
            f"The 'rank' parameter of SequenceBatchSampler must be in [0, {world_size}). Got {rank}."
        )
    return rank, world_size


class SequenceBatchSampler(Sampler[BatchKey]):
    """Yields one :class:`BatchKey` per batch of training rows, deterministic per (seed, epoch).

    Rows shorter than ``min_length`` are skipped. Each epoch's order is a permutation drawn from
    ``(seed, epoch)`` (or the row order when ``shuffle=False``); call :meth:`set_epoch` before each
    epoch, as with ``DistributedSampler``. With ``world_size > 1`` the ordered rows are padded by
    repeating the first ones to a multiple of ``world_size`` (so every rank gets the same number of
    batches) and rank r takes every ``world_size``-th row starting at r: the ranks' rows are
    disjoint when the count divides evenly and together always cover every eligible row.

    Args:
        lengths: (U,) length of each training sequence.
        batch_size: B.
        shuffle: permute rows each epoch.
        seed: seed of the permutations (and, through the keys, of the negatives).
        drop_last: drop the last batch when it is smaller than ``batch_size``.
        rank, world_size: DDP shard; read from ``torch.distributed`` when None and initialized,
            else 0 and 1.
        min_length: shortest sequence used (2: one input and one target).
    """

    def __init__(
        self,
        lengths: np.ndarray,
        *,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
        min_length: int = 2,
    ) -> None:
        self.batch_size = _check_int(batch_size, "batch_size", "SequenceBatchSampler", low=1)
        self.seed = _check_int(seed, "seed", "SequenceBatchSampler", low=0)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.rank, self.world_size = _resolve_rank(rank, world_size)
        self.eligible = np.flatnonzero(np.asarray(lengths) >= min_length).astype(np.int64)
        self.epoch = 0
        if len(self.eligible) == 0:
            log.warning(
                "no training sequence has length >= %d: the loader yields nothing", min_length
            )

    def set_epoch(self, epoch: int) -> None:
        """Use the permutation (and negatives) of ``epoch`` from the next iteration on."""
        self.epoch = _check_int(epoch, "epoch", "SequenceBatchSampler.set_epoch", low=0)

    def epoch_rows(self) -> np.ndarray:
        """(n,) rows this rank trains on in the current epoch, in order."""
        rows = self.eligible
        if self.shuffle:
            rows = np.random.default_rng([self.seed, 0, self.epoch]).permutation(rows)
        if self.world_size > 1 and len(rows):
            per_rank = math.ceil(len(rows) / self.world_size)
            rows = np.resize(rows, per_rank * self.world_size)  # repeats the first rows cyclically
            rows = rows[self.rank :: self.world_size]
        return rows

    def _num_rows(self) -> int:
        n = len(self.eligible)
        return math.ceil(n / self.world_size) if n else 0

    def __len__(self) -> int:
        n = self._num_rows()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[BatchKey]:
        rows = self.epoch_rows()
        for i in range(len(self)):
            chunk = rows[i * self.batch_size : (i + 1) * self.batch_size]
            yield BatchKey(epoch=self.epoch, index=i, rank=self.rank, rows=chunk)


class SequenceBatchDataset(Dataset):
    """Map-style dataset whose items are whole batches: ``dataset[key]`` builds the batch of a
    :class:`BatchKey` with :func:`build_sequence_batch` (or the jagged builder).

    Negatives come from a generator seeded by ``(seed, key.epoch, key.rank, key.index)``, so a
    batch is the same whichever process builds it.

    Args:
        sequences: U training sequences.
        max_len, num_negatives, sampler, negatives_per, reject_positives, user_ids, timestamps,
        side: as in :func:`build_sequence_batch`.
        seed: seed of the negatives.
        layout: ``"padded"`` (:class:`SequenceBatch`) or ``"jagged"`` (:class:`JaggedSequenceBatch`).
    """

    def __init__(
        self,
        sequences: Jagged,
        *,
        max_len: int,
        num_negatives: int = 0,
        sampler: NegativeSampler | None = None,
        negatives_per: NegativesPer = "position",
        reject_positives: bool = True,
        seed: int = 0,
        user_ids: np.ndarray | None = None,
        timestamps: Jagged | None = None,
        side: Side = "left",
        layout: Layout = "padded",
    ) -> None:
        owner = "SequenceBatchDataset"
        _check_build_args(
            owner, sequences, max_len, num_negatives, sampler, negatives_per, reject_positives,
            user_ids, timestamps,
        )  # fmt: skip
        _check_choice(side, "side", owner, SIDES)
        _check_choice(layout, "layout", owner, LAYOUTS)
        self.sequences = sequences
        self.max_len = max_len
        self.num_negatives = num_negatives
        self.sampler = sampler
        self.negatives_per = negatives_per
        self.reject_positives = reject_positives
        self.seed = _check_int(seed, "seed", owner, low=0)
        self.user_ids = None if user_ids is None else np.asarray(user_ids)
        self.timestamps = timestamps
        self.side = side
        self.layout = layout

    def __len__(self) -> int:
        """Number of training sequences (not batches)."""
        return len(self.sequences)

    def __getitem__(self, key: BatchKey) -> SequenceBatch | JaggedSequenceBatch:  # type: ignore[override]
        rng = np.random.default_rng([self.seed, 1, key.epoch, key.rank, key.index])
        common: dict[str, Any] = dict(
            max_len=self.max_len,
            num_negatives=self.num_negatives,
            sampler=self.sampler,
            negatives_per=self.negatives_per,
            reject_positives=self.reject_positives,
            rng=rng,
            user_ids=self.user_ids,
            timestamps=self.timestamps,
        )
        if self.layout == "jagged":
            return build_jagged_sequence_batch(self.sequences, key.rows, **common)
        return build_sequence_batch(self.sequences, key.rows, side=self.side, **common)


def _identity(batch: Any) -> Any:
    return batch


class SequenceLoader(DataLoader):
    """A ``DataLoader`` of whole training batches with :meth:`set_epoch` (see :func:`make_loader`)."""

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's permutation and negatives; call before iterating each epoch."""
        self.sampler.set_epoch(epoch)  # type: ignore[attr-defined]


def make_loader(
    train_sequences: Jagged,
    *,
    batch_size: int,
    max_len: int,
    num_negatives: int,
    shuffle: bool,
    seed: int,
    num_workers: int = 2,
    user_ids: np.ndarray | None = None,
    timestamps: Jagged | None = None,
    num_items: int | None = None,
    sampler: NegativeSampler | None = None,
    negatives_per: NegativesPer = "position",
    reject_positives: bool = True,
    side: Side = "left",
    layout: Layout = "padded",
    drop_last: bool = False,
    rank: int | None = None,
    world_size: int | None = None,
    pin_memory: bool = False,
    prefetch_factor: int | None = None,
) -> SequenceLoader:
    """A loader of next-item training batches, built in NumPy by ``num_workers`` processes.

    Each item of the loader is a whole :class:`SequenceBatch` (or :class:`JaggedSequenceBatch`);
    the batches, their order and their negatives depend only on ``seed``, the epoch (set with
    ``loader.set_epoch(epoch)``) and the rank, not on ``num_workers``.

    Args:
        train_sequences: U training sequences of items 1..N; rows shorter than 2 are skipped.
        batch_size: B.
        max_len: L (SASRec: inputs ``s[:-1]`` and targets ``s[1:]``, most recent L positions).
        num_negatives: K, 0 for none.
        shuffle: a new permutation of the rows each epoch.
        seed: seed of the permutations and the negatives.
        num_workers: worker processes (persistent when > 0); 0 builds batches in this process.
        user_ids: (U,) user of each row; the row index when None.
        timestamps: event times aligned with ``train_sequences``.
        num_items: N for the default uniform sampler; the largest item of ``train_sequences``
            when None (pass it when some items only occur in evaluation).
        sampler: a ready sampler (e.g. popularity); overrides ``num_items``.
        negatives_per, reject_positives, side, layout: see :func:`build_sequence_batch` and
            :class:`SequenceBatchDataset`.
        drop_last: drop each epoch's last, smaller batch.
        rank, world_size: DDP shard (see :class:`SequenceBatchSampler`).
        pin_memory: pin batches in page-locked memory (for asynchronous copies to a GPU).
        prefetch_factor: batches prefetched per worker (torch's default when None).

    Example:
        >>> seqs = Jagged(np.arange(1, 9), np.array([0, 3, 8]))
        >>> loader = make_loader(seqs, batch_size=2, max_len=4, num_negatives=1, shuffle=True,
        ...                      seed=0, num_workers=0)
        >>> loader.set_epoch(0)
        >>> [tuple(b.input_ids.shape) for b in loader]
        [(2, 4)]
    """
    owner = "make_loader"
    _check_int(batch_size, "batch_size", owner, low=1)
    _check_int(max_len, "max_len", owner, low=1)
    num_negatives = _check_int(num_negatives, "num_negatives", owner, low=0)
    num_workers = _check_int(num_workers, "num_workers", owner, low=0)
    values = train_sequences.values
    lowest, highest = (int(values.min()), int(values.max())) if len(values) else (1, 0)
    if lowest < 1:
        raise ValueError(
            f"{owner}: train_sequences must hold item indices 1..N (0 is padding); found {lowest}."
        )
    if sampler is None and num_negatives > 0:
        num_items = highest if num_items is None else num_items
        if num_items < 1:
            raise ValueError(f"{owner}: negatives need num_items >= 1, got {num_items}.")
        sampler = NegativeSampler(num_items, seed=seed)
    if sampler is not None and highest > sampler.num_items:
        raise ValueError(
            f"{owner}: train_sequences hold item {highest}, beyond the sampler's "
            f"num_items={sampler.num_items}."
        )
    dataset = SequenceBatchDataset(
        train_sequences,
        max_len=max_len,
        num_negatives=num_negatives,
        sampler=sampler,
        negatives_per=negatives_per,
        reject_positives=reject_positives,
        seed=seed,
        user_ids=user_ids,
        timestamps=timestamps,
        side=side,
        layout=layout,
    )
    batch_sampler = SequenceBatchSampler(
        train_sequences.lengths,
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        drop_last=drop_last,
        rank=rank,
        world_size=world_size,
    )
    log.debug(
        "make_loader: %d of %d sequences, %d batches/epoch on rank %d/%d, %d workers",
        len(batch_sampler.eligible), len(train_sequences), len(batch_sampler),
        batch_sampler.rank, batch_sampler.world_size, num_workers,
    )  # fmt: skip
    extra: dict[str, Any] = {}
    if num_workers > 0 and prefetch_factor is not None:
        extra["prefetch_factor"] = prefetch_factor
    return SequenceLoader(
        dataset,
        batch_size=None,  # the sampler's keys are whole batches; collate is the identity
        sampler=batch_sampler,
        collate_fn=_identity,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        pin_memory=pin_memory,
        **extra,
    )


def _cycle_epochs(loader: SequenceLoader) -> Iterator[SequenceBatch]:
    """Batches of epoch 0, 1, 2, ... without end."""
    epoch = 0
    while True:
        loader.set_epoch(epoch)
        yield from loader
        epoch += 1


def batch_throughput(
    jagged: Jagged,
    batch_size: int,
    max_len: int,
    num_negatives: int,
    num_workers: int,
    n_batches: int,
    *,
    seed: int = 0,
    negatives_per: NegativesPer = "position",
) -> dict[str, float]:
    """Measure how fast :func:`make_loader` delivers training batches.

    The first batch (worker start-up) is timed apart; the rate is over the next ``n_batches``
    batches, cycling epochs as needed. Events are (input, target) pairs, ``lengths.sum()``.
    ``main_cpu_per_batch_s`` is the CPU time this process spends per batch (building it when
    ``num_workers == 0``, receiving it otherwise): what a training loop pays on its own core.

    Returns:
        ``events_per_s``, ``batches_per_s``, ``startup_s``, ``main_cpu_per_batch_s``,
        ``n_batches``, ``events``, ``num_workers``.
    """
    n_batches = _check_int(n_batches, "n_batches", "batch_throughput", low=1)
    loader = make_loader(
        jagged,
        batch_size=batch_size,
        max_len=max_len,
        num_negatives=num_negatives,
        shuffle=True,
        seed=seed,
        num_workers=num_workers,
        negatives_per=negatives_per,
    )
    if len(loader) == 0:
        raise ValueError("batch_throughput: the sequences give no training batch.")

    stream = _cycle_epochs(loader)
    t0 = time.perf_counter()
    next(stream)
    startup = time.perf_counter() - t0
    events = 0
    cpu0, t1 = time.process_time(), time.perf_counter()
    for _ in range(n_batches):
        events += next(stream).num_events
    elapsed = time.perf_counter() - t1
    main_cpu = time.process_time() - cpu0
    stream.close()
    del loader  # shuts persistent workers down
    return {
        "events_per_s": events / elapsed,
        "batches_per_s": n_batches / elapsed,
        "startup_s": startup,
        "main_cpu_per_batch_s": main_cpu / n_batches,
        "n_batches": float(n_batches),
        "events": float(events),
        "num_workers": float(num_workers),
    }
