"""Sequence containers in plain NumPy: jagged sequences, evaluation examples and leave-one-out splits.

These are what training and evaluation consume. They depend on NumPy alone (no Polars), so a
prepared split can be saved to one ``.npz`` file (:meth:`SequenceSplit.save`) and trained on where
only NumPy and torch are installed (a GPU box), and they load in milliseconds.

Notation: B sequences, E = sum_i L_i values, U users.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shortlist.atomic import atomic_path


@dataclass(frozen=True)
class Jagged:
    """A batch of variable-length integer sequences: ``values`` (sum_i L_i,) and ``offsets`` (B+1,).

    Example:
        >>> j = Jagged(np.array([3, 4, 5], np.int32), np.array([0, 2, 3], np.int64))
        >>> j.lengths.tolist(), j[1].tolist()
        ([2, 1], [5])
    """

    values: np.ndarray
    offsets: np.ndarray

    def __post_init__(self) -> None:
        assert self.offsets.ndim == 1 and len(self.offsets) >= 1, self.offsets.shape
        assert int(self.offsets[0]) == 0 and int(self.offsets[-1]) == len(self.values), (
            int(self.offsets[0]),
            int(self.offsets[-1]),
            len(self.values),
        )

    @property
    def lengths(self) -> np.ndarray:
        """(B,) int64 sequence lengths."""
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.values[self.offsets[i] : self.offsets[i + 1]]

    @staticmethod
    def from_lengths(values: np.ndarray, lengths: np.ndarray) -> Jagged:
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return Jagged(values, offsets)

    @staticmethod
    def concat(parts: Sequence[Jagged]) -> Jagged:
        """The rows of ``parts``, one array after another."""
        return Jagged.from_lengths(
            np.concatenate([p.values for p in parts]), np.concatenate([p.lengths for p in parts])
        )


def segment_indices(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(starts[i], ends[i])`` over i, vectorized: (sum(ends - starts),) int64.

    Example:
        >>> segment_indices(np.array([0, 5]), np.array([2, 8])).tolist()
        [0, 1, 5, 6, 7]
    """
    lengths = np.maximum(np.asarray(ends, np.int64) - np.asarray(starts, np.int64), 0)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    seg_offsets = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=seg_offsets[1:])
    return np.repeat(np.asarray(starts, np.int64) - seg_offsets, lengths) + np.arange(
        total, dtype=np.int64
    )


def training_windows(
    sequences: Jagged, max_len: int, *aligned: Jagged | None
) -> tuple[Jagged, list[Jagged | None], np.ndarray]:
    """Cut every training sequence into windows of ``max_len`` targets so every event is a target.

    A loader keeps the most recent ``max_len`` (input, target) pairs of a row; a user with more
    events than that would never have the older ones as targets. This cuts a sequence of n events
    (n - 1 targets) from the end into ``ceil((n - 1) / max_len)`` windows: window j holds events
    ``[max(0, e - max_len - 1), e)`` with ``e = n - j * max_len`` (consecutive windows share one
    event, the first input of the later one). Every target is trained on once per epoch, like
    RecBole's prefix augmentation but without its O(n * max_len) copies; the cost is shorter
    context for the first targets of each older window.

    Args:
        sequences: B sequences.
        max_len: L, targets per window.
        aligned: jagged arrays aligned with ``sequences`` (timestamps), cut the same way (None
            passes through).

    Returns:
        ``(windows, aligned_windows, row)``: W >= B windows, the aligned arrays cut alike, and
        ``row`` (W,) int64, the source sequence of each window (ordered by source, oldest first).

    Example:
        >>> seqs = Jagged.from_lengths(np.arange(1, 9), np.array([8]))
        >>> w, _, row = training_windows(seqs, 3)
        >>> [w[i].tolist() for i in range(len(w))], row.tolist()
        ([[1, 2], [2, 3, 4, 5], [5, 6, 7, 8]], [0, 0, 0])
    """
    if int(max_len) < 1:
        raise ValueError(f"training_windows: max_len must be >= 1, got {max_len!r}.")
    offsets = sequences.offsets.astype(np.int64, copy=False)
    n = np.diff(offsets)  # (B,)
    count = np.where(n >= 2, -(-(n - 1) // max_len), 1)  # (B,) windows per sequence (>= 1)
    row = np.repeat(np.arange(len(n), dtype=np.int64), count)  # (W,)
    first_window = np.cumsum(count) - count  # (B,)
    # j counts windows back from the most recent (j = 0); windows come out oldest first
    j = count[row] - 1 - (np.arange(len(row), dtype=np.int64) - first_window[row])
    end = n[row] - j * max_len
    start = np.maximum(0, end - max_len - 1)
    index = segment_indices(offsets[row] + start, offsets[row] + end)
    lengths = end - start
    windows = Jagged.from_lengths(sequences.values[index], lengths)
    cut = [None if a is None else Jagged.from_lengths(a.values[index], lengths) for a in aligned]
    return windows, cut, row


def multi_scale_windows(
    sequences: Jagged, sizes: Sequence[int], *aligned: Jagged | None
) -> tuple[Jagged, list[Jagged | None], np.ndarray]:
    """:func:`training_windows` at several window sizes, concatenated: every event is a target
    once per size.

    A model trained only on windows of its own ``max_len`` (2,048, say) sees almost every target
    of a long user with hundreds of events of context, and short contexts (most users' whole
    history) only at the start of a sequence. Adding windows of a short size (200) trains the same
    targets with short contexts too, as a model of that length would see them.

    Args:
        sequences: B sequences.
        sizes: the window sizes (targets per window), each >= 1, no size twice.
        aligned: jagged arrays aligned with ``sequences``, cut the same way (None passes through).

    Returns:
        ``(windows, aligned_windows, row)`` as :func:`training_windows`, the windows of
        ``sizes[0]`` first, then those of ``sizes[1]`` and so on.

    Example:
        >>> seqs = Jagged.from_lengths(np.arange(1, 6), np.array([5]))
        >>> w, _, row = multi_scale_windows(seqs, [4, 2])
        >>> [w[i].tolist() for i in range(len(w))], row.tolist()
        ([[1, 2, 3, 4, 5], [1, 2, 3], [3, 4, 5]], [0, 0, 0])
    """
    sizes = [int(s) for s in sizes]
    if not sizes or len(set(sizes)) != len(sizes):
        raise ValueError(
            f"multi_scale_windows: sizes must be distinct window sizes, at least one; got {sizes!r}."
        )
    parts = [training_windows(sequences, size, *aligned) for size in sizes]
    windows = Jagged.concat([p[0] for p in parts])
    cut = [
        None if a is None else Jagged.concat([p[1][i] for p in parts])  # type: ignore[misc]
        for i, a in enumerate(aligned)
    ]
    return windows, cut, np.concatenate([p[2] for p in parts])


@dataclass(frozen=True)
class EvalExamples:
    """Evaluation examples: predict ``targets`` from ``history``.

    Attributes:
        users: (E,) int32 user indices.
        history: jagged item indices before each target, oldest first (capped at H when set).
        targets: (E,) int32 item indices.
        history_timestamps / target_timestamps: same layout, when the dataset has timestamps.
    """

    users: np.ndarray
    history: Jagged
    targets: np.ndarray
    history_timestamps: Jagged | None = None
    target_timestamps: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.targets)


@dataclass(frozen=True)
class SequenceSplit:
    """A leave-one-out split.

    Attributes:
        train: jagged training sequences of ``train_users`` (oldest first).
        valid / test: evaluation examples.
        num_items: N, so scores are over items 1..N.
        max_history: the evaluation history cap H (None = full history).
    """

    protocol: str
    num_items: int
    train_users: np.ndarray
    train: Jagged
    train_timestamps: Jagged | None
    valid: EvalExamples
    test: EvalExamples
    max_history: int | None

    def summary(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "train_users": len(self.train_users),
            "train_events": len(self.train.values),
            "valid": len(self.valid),
            "test": len(self.test),
            "max_history": self.max_history,
        }

    # -- persistence ------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the split to one ``.npz`` file (atomically: temporary file + rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {
            "meta": np.array([self.protocol, str(self.num_items), str(self.max_history or 0)]),
            "train_users": self.train_users,
            "train.values": self.train.values,
            "train.offsets": self.train.offsets,
        }
        if self.train_timestamps is not None:
            arrays["train_t.values"] = self.train_timestamps.values
            arrays["train_t.offsets"] = self.train_timestamps.offsets
        for name, ex in (("valid", self.valid), ("test", self.test)):
            arrays[f"{name}.users"] = ex.users
            arrays[f"{name}.targets"] = ex.targets
            arrays[f"{name}.history.values"] = ex.history.values
            arrays[f"{name}.history.offsets"] = ex.history.offsets
            if ex.history_timestamps is not None and ex.target_timestamps is not None:
                arrays[f"{name}.history_t.values"] = ex.history_timestamps.values
                arrays[f"{name}.history_t.offsets"] = ex.history_timestamps.offsets
                arrays[f"{name}.target_t"] = ex.target_timestamps
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez_compressed(tmp, **arrays)
        return path

    @staticmethod
    def load(path: str | Path) -> SequenceSplit:
        """Read a split written by :meth:`save`."""
        with np.load(Path(path), allow_pickle=False) as z:
            a = {k: z[k] for k in z.files}

        def jag(prefix: str) -> Jagged | None:
            return (
                Jagged(a[f"{prefix}.values"], a[f"{prefix}.offsets"])
                if f"{prefix}.values" in a
                else None
            )

        def examples(name: str) -> EvalExamples:
            return EvalExamples(
                users=a[f"{name}.users"],
                history=Jagged(a[f"{name}.history.values"], a[f"{name}.history.offsets"]),
                targets=a[f"{name}.targets"],
                history_timestamps=jag(f"{name}.history_t"),
                target_timestamps=a.get(f"{name}.target_t"),
            )

        protocol, num_items, max_history = (str(x) for x in a["meta"])
        return SequenceSplit(
            protocol=protocol,
            num_items=int(num_items),
            train_users=a["train_users"],
            train=Jagged(a["train.values"], a["train.offsets"]),
            train_timestamps=jag("train_t"),
            valid=examples("valid"),
            test=examples("test"),
            max_history=int(max_history) or None,
        )
