"""The next-item head shared by retrievers that score items against one embedding table.

SASRec, KSA and ELASTIC differ only in how ``encode`` turns a left-padded batch of item ids (B, L)
into per-position states (B, L, D); the loss over every real position and the scoring of the whole
catalogue are the same. A subclass provides ``encode`` and an ``item_emb`` table (N+1, D), and its
config the loss settings: ``loss`` ("softmax" or "sampled_softmax"), ``temperature``,
``num_negatives``, ``in_batch_negatives`` and ``normalize``: cosine scores (L2-normalized states and
item rows) divided by ``temperature``, under either loss and when scoring the catalogue. Before
2026-11-29 ``normalize`` only acted under the sampled softmax, so a full-softmax config with
``normalize: true`` trained on dot products divided by ``temperature``; the Beauty sweep configs
that ran so (``*-cos10*``, ``*-cos07``) now say ``normalize: false`` to keep their recorded meaning.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from shortlist.data.batches import EvalBatch, SequenceBatch
from shortlist.models.base import LossOutput, Retriever
from shortlist.models.losses import full_softmax_loss, sampled_softmax_loss

# where a model's learned absolute positions count from ("none": the model has no position table)
POSITION_FROM: tuple[str, ...] = ("oldest", "newest", "none")


def absolute_positions(valid: torch.Tensor, max_len: int, position_from: str) -> torch.Tensor:
    """Learned-position indices (B, L) int64 of a padded batch's real events, from ``valid`` (B, L):
    ``"oldest"`` counts 0, 1, ... from the first real event (appending events keeps them);
    ``"newest"`` gives the latest event ``max_len - 1`` and counts back (SASRec's convention).
    Padding gets an in-range index; callers zero it. Any padding side."""
    if position_from == "newest":
        after = valid.long().flip(1).cumsum(1).flip(1)  # (B, L) real events at or after t
        return (max_len - after).clamp(0, max_len - 1)
    if position_from != "oldest":
        raise ValueError(
            f"absolute_positions counts from 'oldest' or 'newest'. Got {position_from!r} instead."
        )
    return (valid.long().cumsum(1) - 1).clamp(min=0)


class PaddingRotation:
    """Index maps between a left-padded batch (the latest event in the last column) and the same
    rows right-padded (the oldest event in column 0), so that plain causal attention
    (``is_causal=True``: the flash / memory-efficient kernels) never lets a real event see
    padding, without a (B, L, L) mask.

    Built from ``lengths`` (B,) real events per row and the width L; ``valid`` (B, L) marks the
    real events of the right-padded rows.
    """

    def __init__(self, lengths: torch.Tensor, L: int) -> None:
        ar = torch.arange(L, device=lengths.device)
        shift = (L - lengths)[:, None]
        self.to_right = (ar[None, :] + shift) % L  # (B, L): right-padded slot i <- left column
        self.to_left = (ar[None, :] - shift) % L  # the inverse rotation
        self.valid = ar[None, :] < lengths[:, None]

    @staticmethod
    def _gather(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            return x.gather(1, index)
        return x.gather(1, index[..., None].expand(-1, -1, x.shape[-1]))

    def right(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L) or (B, L, D) left-padded -> right-padded."""
        return self._gather(x, self.to_right)

    def left(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L) or (B, L, D) right-padded -> left-padded."""
        return self._gather(x, self.to_left)


def is_full_layer(full_every: int, layer: int) -> bool:
    """Whether layer ``layer`` (0-based) of a hybrid is full attention: with ``full_every = m`` >
    0, layers m-1, 2m-1, ... are (KSA's released models: m = 4); 0 means none."""
    return full_every > 0 and (layer + 1) % full_every == 0


# int settings every next-item config has, with their lower bounds
COMMON_INTS = {
    "num_items": 1, "max_len": 1, "dim": 1, "num_layers": 0, "num_heads": 1,
    "num_negatives": 0, "in_batch_negatives": 0,
}  # fmt: skip


def check_next_item_config(config: object, **ints: int) -> None:
    """Validate the settings shared by next-item configs (the ``COMMON_INTS``, ``dim`` divisible by
    ``num_heads``, ``loss``, ``dropout``, ``temperature``) plus the extra int settings ``ints``
    (name=lower bound); errors name the config class, the setting and the value."""
    owner = type(config).__name__
    for name, low in (COMMON_INTS | ints).items():
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(
                f"The {name!r} parameter of {owner} must be an int >= {low}. Got {value!r} instead."
            )
    c: Any = config
    if c.dim % c.num_heads:
        raise ValueError(
            f"The 'dim' parameter of {owner} ({c.dim}) must be divisible by num_heads ({c.num_heads})."
        )
    if c.loss not in ("softmax", "sampled_softmax"):
        raise ValueError(
            f"The 'loss' parameter of {owner} must be 'softmax' or 'sampled_softmax'. Got {c.loss!r} instead."
        )
    if not 0.0 <= c.dropout < 1.0:
        raise ValueError(
            f"The 'dropout' parameter of {owner} must be in [0, 1). Got {c.dropout!r} instead."
        )
    if not c.temperature > 0:
        raise ValueError(
            f"The 'temperature' parameter of {owner} must be > 0. Got {c.temperature!r} instead."
        )


class NextItemRetriever(Retriever):
    """``compute_loss`` / ``user_states`` / ``score_all`` from ``encode`` and ``item_emb``."""

    item_emb: nn.Embedding

    @staticmethod
    def _init(module: nn.Module) -> None:
        """The weight init of these models (``self.apply(self._init)``): N(0, 0.02), zero biases
        and a zero padding row."""
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()

    @abstractmethod
    def encode(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, L) left-padded item ids -> (B, L) x D states; position t sees events <= t only."""

    def item_table(self) -> torch.Tensor:
        """(N+1, D) what user states are scored against: the item embeddings, L2-normalized with
        ``normalize``."""
        table = self.item_emb.weight
        return F.normalize(table, dim=-1) if self._cosine else table

    @property
    def _cosine(self) -> bool:
        return bool(self.config.normalize)

    def compute_loss(self, batch: SequenceBatch) -> LossOutput:
        """Next-item loss over every real position (full or sampled softmax)."""
        h = self.encode(batch.input_ids)  # (B, L, D)
        keep = batch.target_ids > 0
        hidden, targets = h[keep], batch.target_ids[keep]  # (M, D), (M,)
        c = self.config
        if c.loss == "softmax":
            loss = full_softmax_loss(
                self.normalize_state(hidden), targets, self.item_table(), c.temperature
            )
        else:  # normalizes the sampled rows only
            loss = sampled_softmax_loss(
                hidden,
                targets,
                self.item_emb.weight,
                num_negatives=c.num_negatives,
                in_batch=c.in_batch_negatives,
                temperature=c.temperature,
                normalize=c.normalize,
            )
        return LossOutput(loss=loss, metrics={"positions": float(targets.numel())})

    def normalize_state(self, h: torch.Tensor) -> torch.Tensor:
        """(..., D) states -> L2-normalized with ``normalize``, else unchanged."""
        return F.normalize(h, dim=-1) if self._cosine else h

    def user_states(self, batch: EvalBatch) -> torch.Tensor:
        # left padding puts the latest event last
        return self.normalize_state(self.encode(batch.history)[:, -1])
