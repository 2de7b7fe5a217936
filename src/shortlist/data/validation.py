"""More validation targets per user: ``widen_validation`` moves each evaluated user's last training
events into the validation set.

Leave-one-out gives one validation target per user. On a few hundred users (671 on MovieLens
latest-small, 943 on ML-100k) the mean over those targets is noisy, and a choice of config by it can
follow the particular set of targets (docs/long_sequences.md, the validation-test gap). With
``targets = k``, each evaluated user with enough training events also predicts its last ``k - 1``
training events, each from the events before it, and those events leave the training sequences.
The test examples are untouched: the test protocol (and its anchors) stays the same; the training
data loses up to ``k - 1`` events per evaluated user, the same for every model of a comparison.

Notation: U training users, V validation examples, H the split's history cap.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from shortlist.data.sequences import EvalExamples, Jagged, SequenceSplit, segment_indices


def _reorder(jagged: Jagged, order: np.ndarray) -> Jagged:
    """The rows of ``jagged`` in ``order``."""
    idx = segment_indices(jagged.offsets[:-1][order], jagged.offsets[1:][order])
    return Jagged.from_lengths(jagged.values[idx], jagged.lengths[order])


def widen_validation(split: SequenceSplit, targets: int) -> SequenceSplit:
    """``split`` with up to ``targets`` validation examples per evaluated user.

    Each user of ``split.valid`` whose training sequence has ``t`` events gives its last
    ``m = min(targets - 1, t - 1)`` of them to validation (at least one event stays for training);
    the example of training position ``j`` has history ``train[max(0, j - H):j]`` (H =
    ``split.max_history``, none when unset) and target ``train[j]``. The validation examples are
    ordered by user, each user's oldest target first and the original leave-one-out target last.

    Args:
        split: a leave-one-out split (``leave_one_out`` / ``tiger_split``).
        targets: k >= 1; 1 returns ``split`` unchanged.

    Returns:
        a split with V = (number of moved events) + len(split.valid) validation examples, the
        shortened training sequences, and ``split.test`` as it was.
    """
    if isinstance(targets, bool) or not isinstance(targets, (int, np.integer)) or targets < 1:
        raise ValueError(
            f"The 'targets' parameter of widen_validation must be an int >= 1 (validation targets per "
            f"user). Got {targets!r} instead."
        )
    if targets == 1:
        return split
    train, train_t = split.train, split.train_timestamps
    lengths = train.lengths
    evaluated = np.isin(split.train_users, split.valid.users)
    moved = np.where(evaluated, np.minimum(targets - 1, np.maximum(lengths - 1, 0)), 0)
    keep = lengths - moved

    # (E,) one entry per moved event: its row in ``train`` and its position j within the row
    rows = np.repeat(np.arange(len(lengths)), moved)
    first = np.repeat(np.cumsum(moved) - moved, moved)
    j = np.repeat(keep, moved) + (np.arange(len(rows)) - first)
    target_at = train.offsets[rows] + j
    cap = split.max_history
    starts = train.offsets[rows] + (np.maximum(j - cap, 0) if cap is not None else 0)
    hist_idx = segment_indices(starts, target_at)
    hist_len = target_at - starts
    extra = EvalExamples(
        users=split.train_users[rows].astype(split.valid.users.dtype),
        history=Jagged.from_lengths(train.values[hist_idx], hist_len),
        targets=train.values[target_at].astype(split.valid.targets.dtype),
        history_timestamps=(
            Jagged.from_lengths(train_t.values[hist_idx], hist_len) if train_t is not None else None
        ),
        target_timestamps=train_t.values[target_at] if train_t is not None else None,
    )

    old = split.valid
    users = np.concatenate([extra.users, old.users])
    # by user, then by position: the moved events in time order, the original target after them
    rank = np.concatenate([j, np.full(len(old), np.iinfo(np.int64).max)])
    order = np.lexsort((rank, users))
    both_t = extra.history_timestamps is not None and old.history_timestamps is not None
    valid = EvalExamples(
        users=users[order],
        history=_reorder(Jagged.concat([extra.history, old.history]), order),
        targets=np.concatenate([extra.targets, old.targets])[order],
        history_timestamps=(
            _reorder(Jagged.concat([extra.history_timestamps, old.history_timestamps]), order)  # type: ignore[list-item]
            if both_t
            else None
        ),
        target_timestamps=(
            np.concatenate([extra.target_timestamps, old.target_timestamps])[order]  # type: ignore[list-item]
            if both_t and old.target_timestamps is not None
            else None
        ),
    )
    kept = segment_indices(train.offsets[:-1], train.offsets[:-1] + keep)
    return dataclasses.replace(
        split,
        train=Jagged.from_lengths(train.values[kept], keep),
        train_timestamps=(
            Jagged.from_lengths(train_t.values[kept], keep) if train_t is not None else None
        ),
        valid=valid,
    )
