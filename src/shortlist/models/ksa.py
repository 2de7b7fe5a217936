"""KSA: a sequential retriever built on Kwai Summary Attention (OneRec Team, arXiv 2604.24432, 2026).

Notation: B batch, L positions (left-padded: the most recent event is at L-1), D width, H heads,
k chunk size, W window in chunks, S = ceil(n / k) summary tokens for n events, N items.

Same batches, losses and interface as SASRec (``models/sasrec.py``); the attention differs
(``ops/ksa.py``, ../shared/reference/PAPERS.md, section 2):

- Events are cut into chunks of k counted from the user's oldest event in the row (chunk
  boundaries never move when events are appended, which keeps causality exact and makes the KV
  cache of ``models/ksa_cache.py`` possible). Each chunk gets one summary token: a learned
  embedding with its own Q/K/V projections (``use_independent_qkv``) at the RoPE position of the
  chunk's last event. Summary tokens run through every layer (shared LayerNorms, output
  projection and FFN) and are dropped before scoring, as in KSA.
- KSA layers: an event sees its own chunk causally, the W previous chunks in full and the
  summaries of all older chunks; a summary sees its own chunk. Hybrid: with ``full_every = m``,
  every m-th layer is full causal attention (KSA's released models: 3 KSA : 1 full, ``m = 4``).
- Positions: RoPE over event indices counted from the oldest event (no learned position table,
  so a served user's history may grow past ``max_len``; ``max_len`` only truncates training and
  evaluation batches).

Left-padded rows are rotated to right padding inside ``encode`` (as SASRec does), so chunk 0 starts
at each row's oldest event and no real event ever attends to padding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from shortlist.models.base import register
from shortlist.models.next_item import (
    NextItemRetriever,
    PaddingRotation,
    check_next_item_config,
    is_full_layer,
)
from shortlist.ops.ksa import (
    FLEX_SPAN,
    IMPLS,
    KSAAttentionLayer,
    check_flex_block,
    check_flex_span,
    num_chunks,
    parse_flex_tiles,
)


@dataclass
class KSAConfig:
    num_items: int  # N: items are 1..N
    max_len: int = 200  # events per training/eval row (the most recent max_len); RoPE is unbounded
    dim: int = 64
    num_layers: int = 2
    num_heads: int = 2  # dim / num_heads must be even (RoPE)
    ffn_dim: int = 0  # 0 = 4 * dim
    dropout: float = 0.2  # embeddings and residual branches (no dropout on attention weights)
    chunk_size: int = 8  # k: events per chunk, one summary token each (KSA: 8)
    window: int = 4  # W: previous chunks seen in full by KSA layers (KSA at 8K: 128)
    full_every: int = 0  # 0: all layers KSA; m: layers m-1, 2m-1, ... are full attention (KSA: 4)
    independent_summary_qkv: bool = True  # summary tokens get their own Q/K/V projections
    rope_base: float = 10_000.0
    attention_impl: Literal["fast", "reference", "blocked", "banded", "flex"] = "fast"
    flex_block: int = 128  # block size of the GPU FlexAttention path (64 aligns with chunk_size 64)
    flex_span: int = FLEX_SPAN  # GPU FlexAttention path: queries per summary copy (ops/ksa_flex)
    flex_tiles: str = ""  # GPU FlexAttention path: Triton tiles, "key=value,..." ("": defaults)
    loss: Literal["softmax", "sampled_softmax"] = "softmax"
    num_negatives: int = 128  # sampled softmax: uniform negatives shared by the batch
    in_batch_negatives: int = 0  # sampled softmax: targets of other positions used as negatives
    temperature: float = 1.0  # logits divided by this
    normalize: bool = False  # cosine scores (states and items L2-normalized), either loss

    def __post_init__(self) -> None:
        check_next_item_config(self, ffn_dim=0, chunk_size=1, window=0, full_every=0)
        if (self.dim // self.num_heads) % 2:
            raise ValueError(
                f"The 'dim' parameter of KSAConfig ({self.dim}) must be divisible by num_heads "
                f"({self.num_heads}) into an even head width (RoPE)."
            )
        if self.attention_impl not in IMPLS:
            raise ValueError(
                f"The 'attention_impl' parameter of KSAConfig must be one of {list(IMPLS)}. Got {self.attention_impl!r} instead."
            )
        check_flex_block(self.flex_block, "KSAConfig")
        check_flex_span(self.flex_span, "KSAConfig")
        parse_flex_tiles(self.flex_tiles, self.flex_block, "KSAConfig")
        if not self.rope_base > 0:
            raise ValueError(
                f"The 'rope_base' parameter of KSAConfig must be > 0. Got {self.rope_base!r} instead."
            )

    def is_full_layer(self, layer: int) -> bool:
        """Whether layer ``layer`` (0-based) is a full-attention layer of the hybrid."""
        return is_full_layer(self.full_every, layer)


class KSABlock(nn.Module):
    """Pre-LN block over the event and summary streams: x + Attn(LN(x)), then x + FFN(LN(x))."""

    def __init__(self, config: KSAConfig, full: bool) -> None:
        super().__init__()
        c = config
        self.full = full
        self.ln1 = nn.LayerNorm(c.dim)
        self.attn = KSAAttentionLayer(
            c.dim,
            c.num_heads,
            chunk=c.chunk_size,
            window=None if full else c.window,
            impl=c.attention_impl,
            independent_summary_qkv=c.independent_summary_qkv,
            rope_base=c.rope_base,
            flex_block=c.flex_block,
            flex_span=c.flex_span,
            flex_tiles=c.flex_tiles,
        )
        self.ln2 = nn.LayerNorm(c.dim)
        ffn_dim = c.ffn_dim or 4 * c.dim
        self.ffn = nn.Sequential(
            nn.Linear(c.dim, ffn_dim), nn.GELU(), nn.Dropout(c.dropout), nn.Linear(ffn_dim, c.dim)
        )
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Events (B, L, D) and summaries (B, S, D), right-padded -> the same, updated."""
        a = self.attn.forward_streams(self.ln1(x), self.ln1(s))
        h = torch.cat((x + self.drop(a.events), s + self.drop(a.summaries)), 1)  # (B, L+S, D)
        h = h + self.drop(self.ffn(self.ln2(h)))
        return h[:, : x.shape[1]], h[:, x.shape[1] :]


@register("ksa")
class KSA(NextItemRetriever):
    config_class = KSAConfig

    def __init__(self, config: KSAConfig) -> None:
        super().__init__(config)
        c = config
        self.item_emb = nn.Embedding(c.num_items + 1, c.dim, padding_idx=0)
        self.summary_emb = nn.Parameter(torch.zeros(c.dim))  # the learned summary token
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(KSABlock(c, c.is_full_layer(i)) for i in range(c.num_layers))
        self.ln = nn.LayerNorm(c.dim)
        self.apply(self._init)
        nn.init.normal_(self.summary_emb, std=0.02)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, T) item ids -> (B, T, D) input states ``E[id] * sqrt(D)`` (dropout in training)."""
        return self.drop(self.item_emb(ids) * math.sqrt(self.config.dim))

    def summary_tokens(self, batch: int, count: int) -> torch.Tensor:
        """(B, S, D) input states of ``count`` summary tokens (the learned embedding, repeated)."""
        return self.drop(self.summary_emb.expand(batch, count, -1))

    def encode_aligned(self, ids: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) ids aligned at index 0 (oldest event first; tail padding) -> (B, L, D) states.

        ``valid`` (B, L) marks real events; padded states are zeroed after every block.
        """
        B, L = ids.shape
        x = self.embed(ids)
        if valid is not None:
            x = x * valid[..., None]
        s = self.summary_tokens(B, num_chunks(L, self.config.chunk_size))
        for block in self.blocks:
            x, s = block(x, s)
            if valid is not None:
                x = x * valid[..., None]
        x = self.ln(x)
        return x if valid is None else x * valid[..., None]

    def encode(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, L) left-padded item ids -> (B, L, D) states (zero at padding), any L >= 1.

        Rows are rotated to right padding inside, so chunks start at each row's oldest event
        and a real event never sees padding; states are rotated back before returning.
        """
        rot = PaddingRotation((ids > 0).sum(1), ids.shape[1])
        return rot.left(self.encode_aligned(rot.right(ids), rot.valid))
