"""Jagged helpers: convert between jagged ``(values, offsets)`` sequences and padded arrays.

Notation:
    B   rows (sequences) of a jagged batch
    L   padded length (``max_len``)
    E   values of a jagged batch: ``sum_i L_i``
    R   rows selected by :func:`take`

A :class:`~shortlist.data.schema.Jagged` holds ``(E,)`` values and ``(B+1,)`` offsets: row b is
``values[offsets[b]:offsets[b+1]]``. Everything is vectorized NumPy: per-row start/end positions
come from the offsets and one fancy-indexing gather fills a whole batch, so no Python loop runs per
row.

- :func:`pad`: jagged -> ``(B, L)``, keeping the most recent items by default.
- :func:`to_jagged`: inverse of :func:`pad` for data that never holds the padding value.
- :func:`jagged_from_padded`: inverse of :func:`pad` given each row's length (timestamps,
  features, anything that may equal the padding value).
- :func:`take`: select rows.

The private gathers (``_dense_index``, ``_fill``, ``_gather_flat``) also build the batches of
:mod:`shortlist.data.batches`.

Example:
    >>> seqs = Jagged(np.array([1, 2, 3, 4, 5, 6]), np.array([0, 4, 6]))
    >>> pad(seqs, 3).tolist()
    [[2, 3, 4], [0, 5, 6]]
    >>> back = to_jagged(pad(seqs, 3))
    >>> back.values.tolist(), back.offsets.tolist()
    ([2, 3, 4, 5, 6], [0, 3, 5])
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from shortlist.data._checks import _as_rows, _check_choice, _check_int
from shortlist.data.sequences import Jagged

Side = Literal["left", "right"]

SIDES: tuple[str, ...] = ("left", "right")

__all__ = ["jagged_from_padded", "pad", "take", "to_jagged"]


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


def _dense_index(
    first: np.ndarray, kept: np.ndarray, width: int, side: str, n_values: int, reach: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Where each cell of a (B, width) padded batch reads from, for rows
    ``values[first[b] : first[b] + kept[b]]``.

    Returns ``src`` (B, width), the source index of every cell (clipped into range at padding
    cells, so that ``src + reach`` is a valid index too), and ``pad`` (B, width), True at
    padding cells. One index serves several gathers (inputs, targets, timestamps).
    """
    cols = np.arange(width, dtype=np.int64)
    shift = (width - kept) if side == "left" else np.zeros_like(kept)  # (B,) first real column
    src = cols[None, :] - shift[:, None]  # (B, W) position inside the kept segment
    pad = src < 0  # (B, W)
    pad |= src >= kept[:, None]
    src += first[:, None]  # (B, W) index into values; in place: few large temporaries
    np.clip(src, 0, max(n_values - 1 - reach, 0), out=src)
    return src, pad


def _fill(
    values: np.ndarray,
    src: np.ndarray,
    pad: np.ndarray,
    *,
    offset: int = 0,
    pad_value: Any = 0,
    dtype: Any = np.int64,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """(B, W) array: ``values[src + offset]`` at real cells, ``pad_value`` at padding cells.

    Writes into ``out`` when given (its dtype wins over ``dtype``).
    """
    if out is None:
        out = np.empty(src.shape, dtype=values.dtype if dtype is None else dtype)
    if values.size == 0 or pad.all():
        out.fill(pad_value)
        return out
    base = values[offset:]  # a view: no (B, W) temporary for src + offset
    if base.dtype == out.dtype:
        np.take(base, src, out=out, mode="clip")  # src is in range; "clip" avoids a safety copy
    else:
        out[...] = base[src]
    np.copyto(out, pad_value, where=pad)
    return out


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
    src, mask = _dense_index(first, kept, max_len, side, len(jagged.values))
    return _fill(jagged.values, src, mask, pad_value=pad_value, dtype=dtype)


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
