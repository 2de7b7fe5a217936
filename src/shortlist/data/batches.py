"""Batches for sequential recommenders (SASRec/HSTU-style next-item training and evaluation).

Notation:
    B   sequences (rows) in a batch
    L   padded length of a batch (``max_len``)
    K   sampled negatives (per position, per row or per batch)
    N   number of items: item indices are 1..N and 0 is padding
    E   events in a jagged batch: ``sum_i L_i``
    U   rows (users) of the training sequences

Batches: :class:`SequenceBatch` (padded next-item training), :class:`JaggedSequenceBatch` (the same
as ``(E,)`` values + ``(B+1,)`` offsets for jagged kernels) and :class:`EvalBatch`, built by
:func:`build_sequence_batch`, :func:`build_jagged_sequence_batch` and :func:`build_eval_batch`;
:func:`iter_eval_batches` walks evaluation examples ``batch_size`` at a time (in input order, or
sorted by history length with each batch padded to its longest). A whole batch is filled by the vectorized gathers of :mod:`shortlist.data.jagged`, and
its negatives come from a :class:`~shortlist.data.negatives.NegativeSampler`.
:mod:`shortlist.data.loader` wraps the training builders in a ``torch.utils.data`` pipeline.

Training convention (SASRec): a sequence ``s`` of length ``n >= 2`` gives inputs ``s[:-1]`` and
targets ``s[1:]``, truncated to the most recent ``max_len`` positions.

Example:
    >>> seqs = Jagged(np.array([1, 2, 3, 4, 5, 6]), np.array([0, 4, 6]))
    >>> b = build_sequence_batch(seqs, np.array([0, 1]), max_len=3)
    >>> b.input_ids.tolist(), b.target_ids.tolist()
    ([[1, 2, 3], [0, 0, 5]], [[2, 3, 4], [0, 0, 6]])
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from typing import Any, Literal, TypeVar

import numpy as np
import torch

from shortlist.data._checks import _as_rows, _check_choice, _check_int
from shortlist.data.jagged import (
    SIDES,
    Side,
    _dense_index,
    _fill,
    _gather_flat,
    _offsets_from_lengths,
    take,
)
from shortlist.data.negatives import NegativeSampler
from shortlist.data.sequences import Jagged

NegativesPer = Literal["position", "row", "batch"]

NEGATIVES_PER: tuple[str, ...] = ("position", "row", "batch")

__all__ = [
    "EvalBatch",
    "JaggedSequenceBatch",
    "SequenceBatch",
    "build_eval_batch",
    "build_jagged_sequence_batch",
    "build_sequence_batch",
    "iter_eval_batches",
]


# -- argument checks ---------------------------------------------------------------------------
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


# -- batches -----------------------------------------------------------------------------------
_B = TypeVar("_B", bound="_TensorBatch")


def _rebuild_packed(
    cls: type, packed: torch.Tensor, layout: tuple[tuple[str, tuple[int, ...]], ...], extras: dict
) -> Any:
    """Unpickle a batch: each tensor field is a view of one packed 1-D tensor."""
    kwargs = dict(extras)
    start = 0
    for name, shape in layout:
        size = math.prod(shape)
        kwargs[name] = packed[start : start + size].view(shape)
        start += size
    return cls(**kwargs)


def _rebuild_fields(cls: type, kwargs: dict) -> Any:
    return cls(**kwargs)


class _TensorBatch:
    """Mixin for batch dataclasses: move or pin every tensor field, pickle compactly."""

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle the tensor fields packed into one tensor.

        A DataLoader worker then hands the main process one shared-memory segment per batch
        instead of one per field, which roughly halves the main process's cost of receiving it.
        """
        values = {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]
        tensors = {k: v for k, v in values.items() if isinstance(v, torch.Tensor)}
        if len({(t.dtype, t.device) for t in tensors.values()}) != 1:
            return _rebuild_fields, (type(self), values)
        extras = {k: v for k, v in values.items() if k not in tensors}
        packed = torch.cat([t.reshape(-1) for t in tensors.values()])  # (sum of sizes,)
        layout = tuple((k, tuple(t.shape)) for k, t in tensors.items())
        return _rebuild_packed, (type(self), packed, layout, extras)

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


def _int64_buffers(shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """Views of one int64 allocation, one per named shape.

    One allocation per batch instead of one per field: fewer large allocations, which keeps the
    allocator from returning memory to the OS and page-faulting it back on every batch.
    """
    sizes = {name: math.prod(shape) for name, shape in shapes.items()}
    buf = np.empty(sum(sizes.values()), dtype=np.int64)
    views, start = {}, 0
    for name, shape in shapes.items():
        views[name] = buf[start : start + sizes[name]].reshape(shape)
        start += sizes[name]
    return views


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
        side: padding side (see :func:`~shortlist.data.jagged.pad`).

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
    n_rows, k = len(rows), num_negatives
    neg_shapes = {"position": (n_rows, max_len, k), "row": (n_rows, k), "batch": (k,)}
    shapes: dict[str, tuple[int, ...]] = {
        "input_ids": (n_rows, max_len),
        "target_ids": (n_rows, max_len),
        "lengths": (n_rows,),
        "user_ids": (n_rows,),
    }
    if timestamps is not None:
        shapes["timestamps"] = (n_rows, max_len)
    if k > 0:
        shapes["negatives"] = neg_shapes[negatives_per]
    out = _int64_buffers(shapes)
    values = sequences.values
    src, mask = _dense_index(first, kept, max_len, side, len(values), reach=1)  # (B, L) each
    _fill(values, src, mask, out=out["input_ids"])  # (B, L)
    _fill(values, src, mask, offset=1, out=out["target_ids"])  # (B, L): the next items
    if timestamps is not None:
        _fill(timestamps.values, src, mask, out=out["timestamps"])  # (B, L)
    del src
    out["lengths"][:] = kept
    out["user_ids"][:] = rows if user_ids is None else np.asarray(user_ids)[rows]
    if k > 0:
        real = np.flatnonzero(~mask.ravel())  # (E,) real cells, row-major
        targets = Jagged(out["target_ids"].ravel()[real], _offsets_from_lengths(kept))
        neg = _negatives(targets, k, sampler, negatives_per, reject_positives, rng)
        assert neg is not None
        if negatives_per == "position":
            out["negatives"].fill(0)
            out["negatives"].reshape(-1, k)[real] = neg  # (E, K) into (B, L, K)
        else:
            out["negatives"][...] = neg
    return SequenceBatch(**{name: torch.from_numpy(a) for name, a in out.items()})


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
        side: padding side (see :func:`~shortlist.data.jagged.pad`).
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
    src, mask = _dense_index(first, kept, max_len, side, len(history.values))
    hist = _fill(history.values, src, mask)  # (B, L)
    times = None if timestamps is None else _fill(timestamps.values, src, mask)
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
    by_length: bool = False,
) -> Iterator[tuple[np.ndarray, EvalBatch]]:
    """Evaluation examples ``batch_size`` at a time (the last batch may be smaller), as
    ``(rows, batch)`` pairs: ``rows`` (B,) the examples' indices in the input order.

    In input order every batch is padded to ``max_len``. With ``by_length`` the examples are sorted
    by history length and each batch is padded to its own longest history (at most ``max_len``): a
    model whose output does not depend on extra padding (every sequential retriever here: their
    padding-invariance tests) scores each example alike, with sum_i min(L_i, max_len) positions
    instead of B x max_len (on MovieLens latest-small at max_len 2,048 most histories are a few
    hundred events).
    """
    owner = "iter_eval_batches"
    batch_size = _check_int(batch_size, "batch_size", owner, low=1)
    max_len = _check_int(max_len, "max_len", owner, low=1)
    users, targets = np.asarray(users), np.asarray(targets)
    kept = np.minimum(np.diff(history.offsets), max_len)
    order = np.argsort(kept, kind="stable") if by_length else np.arange(len(history))
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        width = max(1, int(kept[rows].max())) if by_length else max_len
        batch = build_eval_batch(
            users[rows],
            take(history, rows),
            targets[rows],
            max_len=width,
            side=side,
            timestamps=None if timestamps is None else take(timestamps, rows),
        )
        yield rows, batch
