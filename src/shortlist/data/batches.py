"""Batches for sequential recommenders (SASRec/HSTU-style next-item training and evaluation).

Notation:
    B   sequences (rows) in a batch
    L   padded length of a batch (``max_len``)
    K   sampled negatives (per position, per row or per batch)
    N   number of items: item indices are 1..N and 0 is padding
    E   events in a jagged batch: ``sum_i L_i``
    U   rows (users) of the training sequences

Everything on the hot path is vectorized NumPy: per-row start/end positions come from the jagged
``offsets`` and one fancy-indexing gather fills a whole batch, so no Python loop runs per row.

Pieces, bottom up:

- Jagged helpers: :func:`pad` (jagged -> ``(B, L)`` keeping the most recent items), its inverses
  :func:`to_jagged` (drop padding values) and :func:`jagged_from_padded` (use explicit lengths), and
  :func:`take` (select rows).
- :class:`NegativeSampler`: uniform or popularity (``count ** alpha``) negatives, seeded, with
  vectorized rejection of positives.
- Batches: :class:`SequenceBatch` (padded next-item training), :class:`JaggedSequenceBatch` (the same
  as ``(E,)`` values + ``(B+1,)`` offsets for jagged kernels) and :class:`EvalBatch`, built by
  :func:`build_sequence_batch`, :func:`build_jagged_sequence_batch` and :func:`build_eval_batch`.
- A ``torch.utils.data`` pipeline: :class:`SequenceBatchSampler` yields one :class:`BatchKey` (epoch,
  batch index, rank, rows) per batch; :class:`SequenceBatchDataset` turns a key into a whole batch (in
  a worker process when ``num_workers > 0``); :func:`make_loader` wires them into a
  :class:`SequenceLoader`. Negatives of a batch are drawn from a generator seeded by
  ``(seed, epoch, rank, batch index)``, so batches do not depend on the number of workers.

Training convention (SASRec): a sequence ``s`` of length ``n >= 2`` gives inputs ``s[:-1]`` and
targets ``s[1:]``, truncated to the most recent ``max_len`` positions.

Example:
    >>> seqs = Jagged(np.array([1, 2, 3, 4, 5, 6]), np.array([0, 4, 6]))
    >>> pad(seqs, 3).tolist()
    [[2, 3, 4], [0, 5, 6]]
    >>> b = build_sequence_batch(seqs, np.array([0, 1]), max_len=3)
    >>> b.input_ids.tolist(), b.target_ids.tolist()
    ([[1, 2, 3], [0, 0, 5]], [[2, 3, 4], [0, 0, 6]])
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from typing import Any, Literal, TypeVar

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from shortlist.data.schema import Jagged

log = logging.getLogger(__name__)

Side = Literal["left", "right"]
SamplingMode = Literal["uniform", "popularity"]
NegativesPer = Literal["position", "row", "batch"]
Layout = Literal["padded", "jagged"]

SIDES: tuple[str, ...] = ("left", "right")
SAMPLING_MODES: tuple[str, ...] = ("uniform", "popularity")
NEGATIVES_PER: tuple[str, ...] = ("position", "row", "batch")
LAYOUTS: tuple[str, ...] = ("padded", "jagged")

# Rejection rounds before the exact (slow, per-element) fallback; a collision survives r rounds
# with probability p**r, p being the sampling mass of the forbidden items.
_MAX_REJECTION_ROUNDS = 32

__all__ = [
    "BatchKey",
    "EvalBatch",
    "JaggedSequenceBatch",
    "NegativeSampler",
    "SequenceBatch",
    "SequenceBatchDataset",
    "SequenceBatchSampler",
    "SequenceLoader",
    "batch_throughput",
    "build_eval_batch",
    "build_jagged_sequence_batch",
    "build_sequence_batch",
    "iter_eval_batches",
    "jagged_from_padded",
    "make_loader",
    "pad",
    "take",
    "to_jagged",
]


# -- argument checks ---------------------------------------------------------------------------
def _check_int(value: Any, name: str, owner: str, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        kind = "a positive int" if low == 1 else f"an int >= {low}"
        raise ValueError(
            f"The {name!r} parameter of {owner} must be {kind}. Got {value!r} instead."
        )
    return int(value)


def _check_choice(value: Any, name: str, owner: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(
            f"The {name!r} parameter of {owner} must be one of {choices}. Got {value!r} instead."
        )


def _check_same_layout(sequences: Jagged, other: Jagged, name: str, owner: str) -> None:
    if other.offsets is sequences.offsets:
        return
    if other.offsets.shape != sequences.offsets.shape or not np.array_equal(
        other.offsets, sequences.offsets
    ):
        raise ValueError(
            f"The {name!r} parameter of {owner} must have the same offsets as the sequences "
            f"({len(sequences)} rows, {len(sequences.values)} values). Got {len(other)} rows, "
            f"{len(other.values)} values instead."
        )


def _as_rows(rows: np.ndarray | list[int], n: int, owner: str) -> np.ndarray:
    """Row indices as int64, from an int array or a boolean mask of length ``n``."""
    rows = np.asarray(rows)
    if rows.dtype == bool:
        if rows.shape != (n,):
            raise ValueError(
                f"{owner}: a boolean row mask must have shape ({n},), got {rows.shape}."
            )
        return np.flatnonzero(rows)
    if rows.size == 0:
        return np.zeros(0, dtype=np.int64)
    if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer):
        raise ValueError(f"{owner}: rows must be a 1-D int array, got {rows.dtype} {rows.shape}.")
    lo, hi = int(rows.min()), int(rows.max())
    if lo < -n or hi >= n:
        raise IndexError(f"{owner}: row {lo if lo < -n else hi} is out of range for {n} rows.")
    rows = rows.astype(np.int64, copy=False)
    return np.where(rows < 0, rows + n, rows) if lo < 0 else rows


# -- jagged helpers ----------------------------------------------------------------------------
def _offsets_from_lengths(lengths: np.ndarray) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def _gather_flat(values: np.ndarray, first: np.ndarray, kept: np.ndarray) -> Jagged:
    """Rows ``values[first[b] : first[b] + kept[b]]`` concatenated: a Jagged with (sum kept,) values."""
    offsets = _offsets_from_lengths(kept)
    total = int(offsets[-1])
    src = np.arange(total, dtype=np.int64) + np.repeat(first - offsets[:-1], kept)  # (E,)
    return Jagged(values[src], offsets)


def _gather_dense(
    values: np.ndarray,
    first: np.ndarray,
    kept: np.ndarray,
    width: int,
    side: str,
    pad_value: Any,
    dtype: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``values[first[b] : first[b] + kept[b]]`` padded into a (B, width) array.

    Returns the padded array and the (B, width) mask of real (non-padding) cells.
    """
    cols = np.arange(width, dtype=np.int64)
    shift = (width - kept) if side == "left" else np.zeros_like(kept)  # (B,) first real column
    j = cols[None, :] - shift[:, None]  # (B, W) position inside the kept segment
    valid = (j >= 0) & (j < kept[:, None])  # (B, W)
    dtype = values.dtype if dtype is None else dtype
    if values.size == 0 or not valid.any():
        return np.full((len(kept), width), pad_value, dtype=dtype), valid
    src = np.where(valid, first[:, None] + j, 0)  # (B, W), 0 is a safe index for padding cells
    out = np.where(valid, values[src], np.asarray(pad_value, dtype=dtype)).astype(dtype, copy=False)
    return out, valid


def pad(
    jagged: Jagged,
    max_len: int,
    *,
    side: Side = "left",
    truncate: Side = "left",
    pad_value: Any = 0,
    dtype: Any = None,
) -> np.ndarray:
    """Pad (and truncate) a jagged batch into a dense (B, max_len) array.

    Args:
        jagged: B sequences, values (sum_i L_i,) and offsets (B+1,).
        max_len: width L of the result; longer rows are truncated.
        side: where the padding goes: ``"left"`` puts each row's last item in the last column
            (SASRec), ``"right"`` puts its first kept item in column 0.
        truncate: which end of a too-long row is dropped: ``"left"`` drops the oldest items and
            keeps the most recent ``max_len`` (the default), ``"right"`` keeps the first ``max_len``.
        pad_value: value of padding cells (0: the padding item).
        dtype: dtype of the result; the values' dtype by default.

    Returns:
        (B, max_len) array.

    Example:
        >>> j = Jagged(np.array([1, 2, 3, 4]), np.array([0, 3, 4]))
        >>> pad(j, 2).tolist(), pad(j, 2, side="right").tolist()
        ([[2, 3], [0, 4]], [[2, 3], [4, 0]])
    """
    max_len = _check_int(max_len, "max_len", "pad", low=1)
    _check_choice(side, "side", "pad", SIDES)
    _check_choice(truncate, "truncate", "pad", SIDES)
    offsets = jagged.offsets.astype(np.int64, copy=False)
    kept = np.minimum(np.diff(offsets), max_len)  # (B,)
    first = offsets[1:] - kept if truncate == "left" else offsets[:-1]
    out, _ = _gather_dense(jagged.values, first, kept, max_len, side, pad_value, dtype)
    return out


def to_jagged(padded: np.ndarray, pad_value: Any = 0) -> Jagged:
    """Inverse of :func:`pad` for data that never contains ``pad_value``: drop padding cells.

    Works for left and right padding alike (every cell equal to ``pad_value`` is dropped, also in
    the middle of a row); use :func:`jagged_from_padded` when real values may equal ``pad_value``
    (timestamps, features).

    Args:
        padded: (B, L) array.
        pad_value: the padding value.

    Returns:
        Jagged with values (sum_i L_i,) and offsets (B+1,), in row-major order.
    """
    padded = np.asarray(padded)
    if padded.ndim != 2:
        raise ValueError(f"to_jagged expects a (B, L) array, got shape {padded.shape}.")
    mask = padded != pad_value  # (B, L)
    return Jagged(padded[mask], _offsets_from_lengths(mask.sum(axis=1)))


def jagged_from_padded(padded: np.ndarray, lengths: np.ndarray, *, side: Side = "left") -> Jagged:
    """Inverse of :func:`pad` given each row's length: row b keeps its ``lengths[b]`` real cells.

    Args:
        padded: (B, L) array.
        lengths: (B,) number of real cells per row, each in [0, L].
        side: where the padding is (see :func:`pad`).

    Returns:
        Jagged with values (sum lengths,) and offsets (B+1,).
    """
    _check_choice(side, "side", "jagged_from_padded", SIDES)
    padded = np.asarray(padded)
    lengths = np.asarray(lengths, dtype=np.int64)
    if padded.ndim != 2 or lengths.shape != (padded.shape[0],):
        raise ValueError(
            f"jagged_from_padded expects padded (B, L) and lengths (B,), got {padded.shape} and "
            f"{lengths.shape}."
        )
    width = padded.shape[1]
    if lengths.size and (lengths.min() < 0 or lengths.max() > width):
        raise ValueError(f"jagged_from_padded: lengths must lie in [0, {width}], got {lengths}.")
    cols = np.arange(width)[None, :]
    mask = cols >= (width - lengths)[:, None] if side == "left" else cols < lengths[:, None]
    return Jagged(padded[mask], _offsets_from_lengths(lengths))


def take(jagged: Jagged, rows: np.ndarray | list[int]) -> Jagged:
    """Select rows (in the given order, repeats allowed) of a jagged batch.

    Args:
        jagged: B sequences.
        rows: (R,) row indices (negative indices count from the end) or a (B,) boolean mask.

    Returns:
        Jagged of R rows with values (sum_r L_rows[r],) and offsets (R+1,).

    Example:
        >>> j = Jagged(np.array([1, 2, 3, 4]), np.array([0, 3, 4]))
        >>> t = take(j, [1, 0])
        >>> t.values.tolist(), t.offsets.tolist()
        ([4, 1, 2, 3], [0, 1, 4])
    """
    rows = _as_rows(rows, len(jagged), "take")
    offsets = jagged.offsets.astype(np.int64, copy=False)
    lengths = offsets[rows + 1] - offsets[rows]
    return _gather_flat(jagged.values, offsets[rows], lengths)


# -- negative sampling -------------------------------------------------------------------------
class NegativeSampler:
    """Seeded, vectorized negative sampling over items 1..N.

    Modes:
        ``"uniform"``: every item with probability 1/N.
        ``"popularity"``: item i with probability proportional to ``counts[i] ** alpha``
            (alpha < 1 flattens the popularity curve, as in word2vec; items with count 0 are
            never drawn).

    Rejection of positives is vectorized: draw everything, find collisions with one comparison
    (per position) or a sorted-key lookup (per row), redraw only those, and repeat; after
    32 rounds the few survivors are drawn exactly from the allowed items.

    Args:
        num_items: N.
        mode: ``"uniform"`` or ``"popularity"``.
        counts: (N+1,) interaction count per item index (entry 0, the padding item, is ignored),
            e.g. ``np.bincount(sequences.values, minlength=N + 1)``; required for popularity.
        alpha: popularity exponent.
        seed: seed (or generator) of the sampler's own generator, used when a call passes none.

    Example:
        >>> s = NegativeSampler(100, seed=0)
        >>> neg = s.sample_excluding(np.array([5, 7]), 3)  # (2, 3), never 5 in row 0 nor 7 in row 1
        >>> neg.shape, bool((neg[0] != 5).all() and (neg[1] != 7).all())
        ((2, 3), True)
    """

    def __init__(
        self,
        num_items: int,
        *,
        mode: SamplingMode = "uniform",
        counts: np.ndarray | None = None,
        alpha: float = 0.75,
        seed: int | np.random.Generator | None = 0,
    ) -> None:
        self.num_items = _check_int(num_items, "num_items", "NegativeSampler", low=1)
        _check_choice(mode, "mode", "NegativeSampler", SAMPLING_MODES)
        self.mode = mode
        self.alpha = float(alpha)
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        n = self.num_items
        if mode == "uniform":
            self._cdf: np.ndarray | None = None
            self.probabilities = np.full(n + 1, 1.0 / n)
            self.probabilities[0] = 0.0
            return
        if counts is None:
            raise ValueError("NegativeSampler(mode='popularity') needs counts of shape (N+1,).")
        counts = np.asarray(counts, dtype=np.float64)
        if counts.shape != (n + 1,):
            raise ValueError(
                f"The 'counts' parameter of NegativeSampler must have shape (num_items + 1,) = "
                f"({n + 1},), indexed by item (entry 0 ignored). Got {counts.shape} instead."
            )
        if not np.isfinite(counts).all() or counts[1:].min() < 0 or counts[1:].sum() <= 0:
            raise ValueError("NegativeSampler: counts must be finite, >= 0, and not all zero.")
        if not self.alpha >= 0:
            raise ValueError(f"The 'alpha' parameter of NegativeSampler must be >= 0. Got {alpha}.")
        weights = np.where(counts[1:] > 0, counts[1:] ** self.alpha, 0.0)  # (N,), 0**0 stays 0
        self._cdf = np.cumsum(weights)
        self.probabilities = np.concatenate([[0.0], weights / self._cdf[-1]])

    @classmethod
    def from_sequences(
        cls,
        sequences: Jagged,
        num_items: int,
        *,
        alpha: float = 0.75,
        seed: int | np.random.Generator | None = 0,
    ) -> NegativeSampler:
        """A popularity sampler whose counts are the item frequencies of ``sequences``."""
        counts = np.bincount(np.asarray(sequences.values, dtype=np.int64), minlength=num_items + 1)
        if len(counts) > num_items + 1:
            raise ValueError(
                f"NegativeSampler.from_sequences: item {len(counts) - 1} exceeds num_items={num_items}."
            )
        return cls(num_items, mode="popularity", counts=counts, alpha=alpha, seed=seed)

    def __repr__(self) -> str:
        extra = f", alpha={self.alpha}" if self.mode == "popularity" else ""
        return f"NegativeSampler(num_items={self.num_items}, mode={self.mode!r}{extra})"

    def sample(
        self, shape: int | tuple[int, ...], *, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """Independent draws of items in 1..N, int64 array of ``shape``."""
        rng = self.rng if rng is None else rng
        if self._cdf is None:
            return rng.integers(1, self.num_items + 1, size=shape, dtype=np.int64)
        u = rng.random(shape) * self._cdf[-1]
        idx = np.searchsorted(self._cdf, u, side="right")  # zero-weight items are never hit
        return np.minimum(idx, self.num_items - 1).astype(np.int64) + 1

    def sample_excluding(
        self, positives: np.ndarray, k: int, *, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """(M, k) negatives for (M,) positives; ``out[m, j] != positives[m]`` for all j.

        Raises:
            ValueError: when a positive holds all the sampling mass (e.g. N == 1).
        """
        rng = self.rng if rng is None else rng
        positives = np.asarray(positives, dtype=np.int64).reshape(-1)
        out = self.sample((len(positives), k), rng=rng)  # (M, k)
        if out.size == 0:
            return out
        bad = np.flatnonzero(out.ravel() == np.repeat(positives, k))
        owner = positives[bad // k]
        for _ in range(_MAX_REJECTION_ROUNDS):
            if bad.size == 0:
                return out
            redraw = self.sample(bad.size, rng=rng)
            out.flat[bad] = redraw
            still = redraw == owner
            bad, owner = bad[still], owner[still]
        self._exact_fallback(out, bad, [np.array([p]) for p in owner], rng)
        return out

    def sample_excluding_rows(
        self, forbidden: Jagged, k: int, *, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """(R, k) negatives, none of row r's among ``forbidden[r]`` (e.g. the row's targets).

        Raises:
            ValueError: when a row's forbidden items hold all the sampling mass.
        """
        rng = self.rng if rng is None else rng
        n_rows = len(forbidden)
        out = self.sample((n_rows, k), rng=rng)  # (R, k)
        if out.size == 0 or len(forbidden.values) == 0:
            return out
        stride = self.num_items + 1
        row_of_value = np.repeat(np.arange(n_rows, dtype=np.int64), forbidden.lengths)
        keys = np.sort(row_of_value * stride + forbidden.values.astype(np.int64))  # (E,)

        def collides(flat: np.ndarray, cand: np.ndarray) -> np.ndarray:
            q = (flat // k) * stride + cand
            pos = np.minimum(np.searchsorted(keys, q), len(keys) - 1)
            return keys[pos] == q

        bad = np.flatnonzero(collides(np.arange(out.size), out.ravel()))
        for _ in range(_MAX_REJECTION_ROUNDS):
            if bad.size == 0:
                return out
            redraw = self.sample(bad.size, rng=rng)
            out.flat[bad] = redraw
            bad = bad[collides(bad, redraw)]
        self._exact_fallback(out, bad, [forbidden[r] for r in bad // k], rng)
        return out

    def _exact_fallback(
        self,
        out: np.ndarray,
        flat: np.ndarray,
        forbidden: list[np.ndarray],
        rng: np.random.Generator,
    ) -> None:
        """Draw the few cells that kept colliding from the allowed items (cold path)."""
        if flat.size == 0:
            return
        log.debug("exact negative sampling for %d cells after rejection", flat.size)
        k = out.shape[1]
        for cell, items in zip(flat, forbidden, strict=True):
            p = self.probabilities.copy()
            p[np.asarray(items, dtype=np.int64)] = 0.0
            total = p.sum()
            if total <= 0:
                raise ValueError(
                    f"Cannot draw a negative for row {cell // k}: its {len(np.unique(items))} "
                    f"positives cover every item that {self!r} can draw. Use reject_positives=False "
                    "(and mask collisions in the loss) or a larger catalogue."
                )
            out.flat[cell] = rng.choice(len(p), p=p / total)


# -- batches -----------------------------------------------------------------------------------
_B = TypeVar("_B", bound="_TensorBatch")


class _TensorBatch:
    """Mixin for batch dataclasses: move or pin every tensor field."""

    def to(self: _B, device: torch.device | str, *, non_blocking: bool = False) -> _B:
        """A copy with every tensor on ``device``."""
        moved = {
            f.name: getattr(self, f.name).to(device, non_blocking=non_blocking)
            for f in fields(self)  # type: ignore[arg-type]
            if isinstance(getattr(self, f.name), torch.Tensor)
        }
        return replace(self, **moved)  # type: ignore[type-var]

    def pin_memory(self: _B) -> _B:
        """A copy in page-locked memory (called by ``DataLoader(pin_memory=True)``)."""
        pinned = {
            f.name: getattr(self, f.name).pin_memory()
            for f in fields(self)  # type: ignore[arg-type]
            if isinstance(getattr(self, f.name), torch.Tensor)
        }
        return replace(self, **pinned)  # type: ignore[type-var]


@dataclass(frozen=True)
class SequenceBatch(_TensorBatch):
    """A padded next-item training batch.

    Shapes (B rows, L = max_len, K negatives), all int64:
        input_ids: (B, L) items of each row's input ``s[:-1]`` (most recent L), 0 = padding.
        target_ids: (B, L) next item at each position (``s[1:]``), 0 where there is none.
        lengths: (B,) real positions per row (at the right end with left padding, at the left
            end with right padding).
        user_ids: (B,) user of each row.
        timestamps: (B, L) time of each input event, 0 at padding; None when not given.
        negatives: (B, L, K) per position (0 at padding), (B, K) per row or (K,) for the whole
            batch; None without negatives.
    """

    input_ids: torch.Tensor
    target_ids: torch.Tensor
    lengths: torch.Tensor
    user_ids: torch.Tensor
    timestamps: torch.Tensor | None = None
    negatives: torch.Tensor | None = None

    @property
    def num_events(self) -> int:
        """Number of (input, target) pairs in the batch: ``lengths.sum()``."""
        return int(self.lengths.sum())


@dataclass(frozen=True)
class JaggedSequenceBatch(_TensorBatch):
    """A next-item training batch in jagged form, for kernels taking (sum_i L_i, D) + offsets.

    Shapes (B rows, E = sum_i L_i events, K negatives), all int64:
        values: (E,) input items, row b in ``values[offsets[b]:offsets[b+1]]``.
        offsets: (B+1,) row boundaries.
        targets: (E,) next item of each input.
        user_ids: (B,) user of each row.
        max_len: bound on every row's length (the ``max_len`` used to truncate).
        timestamps: (E,) time of each input event, or None.
        negatives: (E, K) per position, (B, K) per row or (K,) per batch, or None.
    """

    values: torch.Tensor
    offsets: torch.Tensor
    targets: torch.Tensor
    user_ids: torch.Tensor
    max_len: int
    timestamps: torch.Tensor | None = None
    negatives: torch.Tensor | None = None

    @property
    def lengths(self) -> torch.Tensor:
        """(B,) events per row."""
        return self.offsets[1:] - self.offsets[:-1]

    @property
    def num_events(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class EvalBatch(_TensorBatch):
    """An evaluation batch: each row's history and the item to predict.

    Shapes (B rows, L = max_len), all int64:
        history: (B, L) most recent L history items, 0 = padding.
        target: (B,) held-out next item.
        user_ids: (B,) user of each row.
        lengths: (B,) real positions of each history row.
        timestamps: (B, L) time of each history event, or None.
    """

    history: torch.Tensor
    target: torch.Tensor
    user_ids: torch.Tensor
    lengths: torch.Tensor
    timestamps: torch.Tensor | None = None


# -- batch building ----------------------------------------------------------------------------
def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64))


def _training_window(
    sequences: Jagged, rows: np.ndarray, max_len: int
) -> tuple[np.ndarray, np.ndarray]:
    """First input position and number of kept (input, target) pairs for each row.

    Inputs of row b are ``values[first[b] + j]`` and targets ``values[first[b] + 1 + j]`` for
    ``j < kept[b]``; rows shorter than 2 keep nothing.
    """
    offsets = sequences.offsets.astype(np.int64, copy=False)
    end = offsets[rows + 1]  # (B,)
    kept = np.clip(end - offsets[rows] - 1, 0, max_len)  # (B,)
    return end - 1 - kept, kept


def _check_build_args(
    owner: str,
    sequences: Jagged,
    max_len: int,
    num_negatives: int,
    sampler: NegativeSampler | None,
    negatives_per: str,
    reject_positives: bool,
    user_ids: np.ndarray | None,
    timestamps: Jagged | None,
) -> None:
    _check_int(max_len, "max_len", owner, low=1)
    _check_int(num_negatives, "num_negatives", owner, low=0)
    _check_choice(negatives_per, "negatives_per", owner, NEGATIVES_PER)
    if num_negatives > 0 and sampler is None:
        raise ValueError(
            f"{owner}: num_negatives={num_negatives} needs a sampler, e.g. NegativeSampler(num_items)."
        )
    if num_negatives > 0 and negatives_per == "batch" and reject_positives:
        raise ValueError(
            f"{owner}: negatives shared by the whole batch (negatives_per='batch') cannot avoid "
            "every positive of the batch; pass reject_positives=False and mask collisions in the loss."
        )
    if user_ids is not None and np.shape(user_ids) != (len(sequences),):
        raise ValueError(
            f"The 'user_ids' parameter of {owner} must have shape ({len(sequences)},), one per "
            f"sequence. Got {np.shape(user_ids)} instead."
        )
    if timestamps is not None:
        _check_same_layout(sequences, timestamps, "timestamps", owner)


def _negatives(
    targets: Jagged,
    num_negatives: int,
    sampler: NegativeSampler | None,
    negatives_per: str,
    reject_positives: bool,
    rng: np.random.Generator | None,
) -> np.ndarray | None:
    """Negatives for jagged targets: (E, K) per position, (B, K) per row or (K,) per batch."""
    if num_negatives == 0 or sampler is None:
        return None
    if negatives_per == "batch":
        return sampler.sample(num_negatives, rng=rng)
    if negatives_per == "row":
        if reject_positives:
            return sampler.sample_excluding_rows(targets, num_negatives, rng=rng)
        return sampler.sample((len(targets), num_negatives), rng=rng)
    if reject_positives:
        return sampler.sample_excluding(targets.values, num_negatives, rng=rng)
    return sampler.sample((len(targets.values), num_negatives), rng=rng)


def build_sequence_batch(
    sequences: Jagged,
    rows: np.ndarray,
    *,
    max_len: int,
    num_negatives: int = 0,
    sampler: NegativeSampler | None = None,
    negatives_per: NegativesPer = "position",
    reject_positives: bool = True,
    rng: np.random.Generator | None = None,
    user_ids: np.ndarray | None = None,
    timestamps: Jagged | None = None,
    side: Side = "left",
) -> SequenceBatch:
    """Build a padded next-item training batch from rows of the training sequences.

    Args:
        sequences: U training sequences of items 1..N (values (sum_u L_u,), offsets (U+1,)).
        rows: (B,) rows of ``sequences`` in the batch; rows shorter than 2 give all-padding rows.
        max_len: L, the number of most recent (input, target) positions kept.
        num_negatives: K; 0 for no negatives.
        sampler: draws negatives (needed when K > 0).
        negatives_per: ``"position"`` (B, L, K), ``"row"`` (B, K) or ``"batch"`` (K,).
        reject_positives: per position, a negative never equals that position's target; per row,
            never any target of the row; not available per batch.
        rng: generator for the negatives (the sampler's own when None).
        user_ids: (U,) user of each sequence row; the row index when None.
        timestamps: U sequences of event times aligned with ``sequences`` (same offsets).
        side: padding side (see :func:`pad`).

    Returns:
        A :class:`SequenceBatch` of B rows.
    """
    owner = "build_sequence_batch"
    _check_build_args(
        owner, sequences, max_len, num_negatives, sampler, negatives_per, reject_positives,
        user_ids, timestamps,
    )  # fmt: skip
    _check_choice(side, "side", owner, SIDES)
    rows = _as_rows(rows, len(sequences), owner)
    first, kept = _training_window(sequences, rows, max_len)
    values = sequences.values
    inputs, valid = _gather_dense(values, first, kept, max_len, side, 0, np.int64)  # (B, L)
    targets, _ = _gather_dense(values, first + 1, kept, max_len, side, 0, np.int64)  # (B, L)
    times = None
    if timestamps is not None:
        times, _ = _gather_dense(timestamps.values, first, kept, max_len, side, 0, np.int64)
    negatives = None
    if num_negatives > 0:
        flat_targets = Jagged(targets[valid], _offsets_from_lengths(kept))  # (E,), row-major
        neg = _negatives(flat_targets, num_negatives, sampler, negatives_per, reject_positives, rng)
        if negatives_per == "position":
            negatives = np.zeros((len(rows), max_len, num_negatives), dtype=np.int64)
            negatives[valid] = neg  # (E, K) into (B, L, K)
        else:
            negatives = neg
    users = rows if user_ids is None else np.asarray(user_ids)[rows]
    return SequenceBatch(
        input_ids=_tensor(inputs),
        target_ids=_tensor(targets),
        lengths=_tensor(kept),
        user_ids=_tensor(users),
        timestamps=None if times is None else _tensor(times),
        negatives=None if negatives is None else _tensor(negatives),
    )


def build_jagged_sequence_batch(
    sequences: Jagged,
    rows: np.ndarray,
    *,
    max_len: int,
    num_negatives: int = 0,
    sampler: NegativeSampler | None = None,
    negatives_per: NegativesPer = "position",
    reject_positives: bool = True,
    rng: np.random.Generator | None = None,
    user_ids: np.ndarray | None = None,
    timestamps: Jagged | None = None,
) -> JaggedSequenceBatch:
    """Build the jagged form of :func:`build_sequence_batch` (same arguments, no padding side).

    Given the same generator state, its values/targets/negatives equal the padded batch's real
    cells in row-major order.
    """
    owner = "build_jagged_sequence_batch"
    _check_build_args(
        owner, sequences, max_len, num_negatives, sampler, negatives_per, reject_positives,
        user_ids, timestamps,
    )  # fmt: skip
    rows = _as_rows(rows, len(sequences), owner)
    first, kept = _training_window(sequences, rows, max_len)
    inputs = _gather_flat(sequences.values, first, kept)  # values (E,), offsets (B+1,)
    targets = _gather_flat(sequences.values, first + 1, kept)
    times = None if timestamps is None else _gather_flat(timestamps.values, first, kept).values
    neg = _negatives(targets, num_negatives, sampler, negatives_per, reject_positives, rng)
    users = rows if user_ids is None else np.asarray(user_ids)[rows]
    return JaggedSequenceBatch(
        values=_tensor(inputs.values),
        offsets=_tensor(inputs.offsets),
        targets=_tensor(targets.values),
        user_ids=_tensor(users),
        max_len=max_len,
        timestamps=None if times is None else _tensor(times),
        negatives=None if neg is None else _tensor(neg),
    )


def build_eval_batch(
    users: np.ndarray,
    history: Jagged,
    targets: np.ndarray,
    *,
    max_len: int,
    side: Side = "left",
    timestamps: Jagged | None = None,
) -> EvalBatch:
    """Build an evaluation batch from B examples (as the split protocols produce them).

    Args:
        users: (B,) user of each example.
        history: B histories (items 1..N); an empty history gives an all-padding row.
        targets: (B,) item to predict.
        max_len: L; the most recent L history items are kept.
        side: padding side (see :func:`pad`).
        timestamps: B sequences of history event times, aligned with ``history``.
    """
    owner = "build_eval_batch"
    max_len = _check_int(max_len, "max_len", owner, low=1)
    _check_choice(side, "side", owner, SIDES)
    users, targets = np.asarray(users), np.asarray(targets)
    if users.shape != (len(history),) or targets.shape != (len(history),):
        raise ValueError(
            f"{owner}: users and targets must have shape ({len(history)},) like the history. "
            f"Got {users.shape} and {targets.shape} instead."
        )
    if timestamps is not None:
        _check_same_layout(history, timestamps, "timestamps", owner)
    offsets = history.offsets.astype(np.int64, copy=False)
    kept = np.minimum(np.diff(offsets), max_len)
    first = offsets[1:] - kept
    hist, _ = _gather_dense(history.values, first, kept, max_len, side, 0, np.int64)
    times = None
    if timestamps is not None:
        times, _ = _gather_dense(timestamps.values, first, kept, max_len, side, 0, np.int64)
    return EvalBatch(
        history=_tensor(hist),
        target=_tensor(targets),
        user_ids=_tensor(users),
        lengths=_tensor(kept),
        timestamps=None if times is None else _tensor(times),
    )


def iter_eval_batches(
    users: np.ndarray,
    history: Jagged,
    targets: np.ndarray,
    *,
    batch_size: int,
    max_len: int,
    side: Side = "left",
    timestamps: Jagged | None = None,
) -> Iterator[EvalBatch]:
    """Evaluation examples in order, ``batch_size`` at a time (the last batch may be smaller)."""
    owner = "iter_eval_batches"
    batch_size = _check_int(batch_size, "batch_size", owner, low=1)
    _check_int(max_len, "max_len", owner, low=1)
    users, targets = np.asarray(users), np.asarray(targets)
    for start in range(0, len(history), batch_size):
        rows = np.arange(start, min(start + batch_size, len(history)))
        yield build_eval_batch(
            users[rows],
            take(history, rows),
            targets[rows],
            max_len=max_len,
            side=side,
            timestamps=None if timestamps is None else take(timestamps, rows),
        )


# -- torch.utils.data pipeline -----------------------------------------------------------------
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
    if sampler is None and num_negatives > 0:
        if num_items is None:
            values = train_sequences.values
            num_items = int(values.max()) if len(values) else 0
        if num_items < 1:
            raise ValueError(f"{owner}: negatives need num_items >= 1, got {num_items}.")
        sampler = NegativeSampler(num_items, seed=seed)
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

    Returns:
        ``events_per_s``, ``batches_per_s``, ``startup_s``, ``n_batches``, ``events``,
        ``num_workers``.
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
    t1 = time.perf_counter()
    for _ in range(n_batches):
        events += next(stream).num_events
    elapsed = time.perf_counter() - t1
    stream.close()
    del loader  # shuts persistent workers down
    return {
        "events_per_s": events / elapsed,
        "batches_per_s": n_batches / elapsed,
        "startup_s": startup,
        "n_batches": float(n_batches),
        "events": float(events),
        "num_workers": float(num_workers),
    }
