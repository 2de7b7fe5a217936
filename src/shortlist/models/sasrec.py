"""SASRec: self-attentive sequential recommendation (Kang & McAuley, ICDM 2018).

Notation: B batch, L positions (left-padded: the most recent event is at L-1), D width, N items.

Item embeddings E (N+1, D) (row 0 = padding) scaled by sqrt(D), plus learned absolute position
embeddings counted from the right end (so the latest event always has position max_len-1), then
pre-LayerNorm transformer blocks with causal self-attention (SDPA) and a feed-forward layer, and a
final LayerNorm. The state at position t scores item i as h_t . E_i (embeddings shared between input
and output, as in the paper). Losses: full softmax cross-entropy over all items, or sampled softmax
(shared uniform + in-batch negatives, optional cosine/temperature), see ``models/losses.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from shortlist.models.base import register
from shortlist.models.next_item import (
    NextItemRetriever,
    PaddingRotation,
    absolute_positions,
    check_next_item_config,
)


@dataclass
class SASRecConfig:
    num_items: int  # N: items are 1..N
    max_len: int = 50  # positions per sequence (the most recent max_len events)
    dim: int = 64
    num_layers: int = 2
    num_heads: int = 1
    ffn_dim: int = 0  # 0 = 4 * dim
    dropout: float = 0.2
    loss: Literal["softmax", "sampled_softmax"] = "softmax"
    num_negatives: int = 128  # sampled softmax: uniform negatives shared by the batch
    in_batch_negatives: int = 0  # sampled softmax: targets of other positions used as negatives
    temperature: float = 1.0  # logits divided by this (HSTU's sampled softmax: 0.05 with normalize)
    normalize: bool = False  # cosine scores (states and items L2-normalized), either loss

    def __post_init__(self) -> None:
        check_next_item_config(self)


class Block(nn.Module):
    """Pre-LN transformer block: x + Attn(LN(x)), then x + FFN(LN(x))."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(
            nn.Linear(dim, ffn_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn_dim, dim)
        )
        self.dropout = dropout
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, D) right-padded states -> (B, L, D); causal, so padding (at the end) is never seen."""
        B, L, D = x.shape
        q, k, v = (
            self.qkv(self.ln1(x)).view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        )  # 3 x (B, H, L, D/H)
        a = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
        )
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(B, L, D)))
        return x + self.drop(self.ffn(self.ln2(x)))


@register("sasrec")
class SASRec(NextItemRetriever):
    config_class = SASRecConfig

    def __init__(self, config: SASRecConfig) -> None:
        super().__init__(config)
        c = config
        self.item_emb = nn.Embedding(c.num_items + 1, c.dim, padding_idx=0)
        self.pos_emb = nn.Embedding(c.max_len, c.dim)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            Block(c.dim, c.num_heads, c.ffn_dim or 4 * c.dim, c.dropout)
            for _ in range(c.num_layers)
        )
        self.ln = nn.LayerNorm(c.dim)
        self.apply(self._init)

    def encode(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, L) left-padded item ids -> (B, L, D) states (zero at padding); L <= max_len.

        Rows are rotated to right padding inside, so that plain causal attention (SDPA with
        ``is_causal=True``: the flash / memory-efficient kernels) never lets a real position see a
        padding one, without a (B, L, L) mask; states are rotated back before returning.
        """
        L = ids.shape[1]
        if self.config.max_len < L:
            raise ValueError(
                f"Sequences of length {L} exceed SASRec's max_len={self.config.max_len}; pad/truncate to max_len."
            )
        lengths = (ids > 0).sum(1)  # (B,)
        rot = PaddingRotation(lengths, L)
        valid = rot.valid  # (B, L) right-padded validity
        # positions counted from the newest event: the latest event has position max_len - 1
        pos = absolute_positions(valid, self.config.max_len, "newest")
        x = self.item_emb(rot.right(ids)) * math.sqrt(self.config.dim) + self.pos_emb(pos)
        x = self.drop(x) * valid[..., None]
        for block in self.blocks:
            x = block(x) * valid[..., None]
        x = self.ln(x) * valid[..., None]
        return rot.left(x)
