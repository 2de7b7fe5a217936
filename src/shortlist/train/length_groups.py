"""Rows of a padded training batch in groups of similar length, for exact gradient accumulation.

A left-padded batch costs every row its longest row's width. Histories are skewed: at max length
2,048 on MovieLens latest-small, most random batches of 16 windows draw one long user, and three
quarters of their positions are padding (``benchmarks/results/length_groups_speed.json``). Training each group of rows at its own width,
and weighting each group's mean loss by its share of the batch's targets, gives the gradient of
the whole batch's mean loss (:func:`group_weights`), at the cost of one forward and backward per
group. ``train.length_groups`` in :mod:`shortlist.train.trainer` turns it on.

The sum is exact for a loss that is a mean over the batch's targets with nothing shared between
rows: the full softmax of SASRec, HSTU, KSA and ELASTIC. With sampled softmax and in-batch
negatives, each group draws its negatives from its own rows; with dropout, the masks differ
(another draw, the same distribution).
"""

from __future__ import annotations

import dataclasses

import torch

from shortlist.data.batches import SequenceBatch

# a group takes every remaining row longer than 1/LENGTH_GROUP_RATIO of the group's longest row
LENGTH_GROUP_RATIO = 4


def group_rows(
    lengths: torch.Tensor, max_groups: int, ratio: float = LENGTH_GROUP_RATIO
) -> list[torch.Tensor]:
    """Row indices in groups of similar length.

    The longest remaining row opens a group, which takes every remaining row whose length is more
    than ``1 / ratio`` of it; the last allowed group takes all the rest.

    Args:
        lengths: (B,) events per row.
        max_groups: at most this many groups (>= 1; 1 returns all rows in one group).
        ratio: > 1.

    Returns:
        Index tensors (int64, on ``lengths``'s device), longest rows first; together they hold
        every row once.

    Example:
        >>> [g.tolist() for g in group_rows(torch.tensor([3, 100, 30, 2, 90]), 3)]
        [[1, 4, 2], [0, 3]]
    """
    if isinstance(max_groups, bool) or not isinstance(max_groups, int) or max_groups < 1:
        raise ValueError(f"max_groups must be an int >= 1. Got {max_groups!r} instead.")
    if not ratio > 1:
        raise ValueError(f"ratio must be > 1. Got {ratio!r} instead.")
    order = torch.sort(lengths, descending=True, stable=True).indices
    ranked = lengths[order].tolist()
    groups: list[torch.Tensor] = []
    start = 0
    while start < len(ranked):
        end = len(ranked)
        if len(groups) < max_groups - 1:
            end = start + 1
            while end < len(ranked) and ranked[end] * ratio > ranked[start]:
                end += 1
        groups.append(order[start:end])
        start = end
    return groups


def take_rows(batch: SequenceBatch, rows: torch.Tensor) -> SequenceBatch:
    """The batch's ``rows`` (index tensor): every per-row field indexed, a per-batch (K,)
    negatives tensor shared."""
    fields: dict[str, torch.Tensor | None] = {}
    for f in dataclasses.fields(batch):
        value = getattr(batch, f.name)
        per_row = isinstance(value, torch.Tensor) and not (
            f.name == "negatives" and value.dim() == 1
        )
        fields[f.name] = value.index_select(0, rows) if per_row else value
    return dataclasses.replace(batch, **fields)


def length_groups(
    batch: SequenceBatch, max_groups: int, ratio: float = LENGTH_GROUP_RATIO
) -> list[SequenceBatch]:
    """``batch`` cut into at most ``max_groups`` batches of rows of similar length
    (:func:`group_rows`); one group returns ``[batch]`` itself (``max_groups`` 1 without sorting:
    the trainer calls this for every batch)."""
    if max_groups == 1:
        return [batch]
    rows = group_rows(batch.lengths, max_groups, ratio)
    return [batch] if len(rows) == 1 else [take_rows(batch, r) for r in rows]


def group_weights(groups: list[SequenceBatch]) -> list[float]:
    """Each group's share of the targets (``target_ids > 0``) of all groups: with these weights,
    the sum of the groups' mean losses is the whole batch's mean loss."""
    counts = [int((g.target_ids > 0).sum()) for g in groups]
    total = sum(counts)
    if total == 0:
        return [1.0 / len(groups)] * len(groups)
    return [n / total for n in counts]
