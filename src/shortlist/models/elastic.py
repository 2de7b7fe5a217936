"""ELASTIC: a sequential retriever with Linear Dispatcher Attention and Interest Memory Retrieval.

Paper: ELASTIC, Efficient Linear Attention for Sequential Interest Compression (Deng et al.,
arXiv 2408.09380). The paper is withdrawn and has no code; only the abstract is verified ("interest
experts", "Linear Dispatcher Attention" in linear time, a "vast learnable interest memory bank"
"sparsely retrieved"). Everything below is reconstruction (PAPERS.md section 1) plus this project's
causal design; docs/long_sequences.md ("ELASTIC") lists each choice.

Notation: B batch, L positions (left-padded: the most recent event is at L-1), D width, N items,
k experts, M memory slots.

Model (it mirrors SASRec: same batches, losses, item table and evaluation):
    x_t = E[i_t] sqrt(D) + P[t - first]   (positions counted from the first real event of the row,
                                           so appending events never changes earlier positions;
                                           ``position_from``: "newest" counts back from the latest
                                           event as SASRec does, "none" has no position table)
    per block:  x = x + Drop(LDA(LN(x), mem_t))   mem_t = IMR(W_l LN(x)_t) (optional, per position)
                x = x + Drop(FFN(LN(x)))
    hybrid (``full_every`` m > 0): blocks m-1, 2m-1, ... take full causal attention instead of the
    LDA (as KSA's hybrid: its released models have one full layer in 4), at O(L^2) for those blocks
    h = LN(x); the score of item i at position t is h_t . E_i.
LDA: :class:`~shortlist.ops.dispatcher_layer.DispatcherAttentionLayer` (k learned interest experts
per layer compress every prefix; each position dispatches from its own causal expert states and,
with ``local_window`` W > 0, from its W most recent events exactly; with ``decay_half_life`` > 0
older events fade from each expert's summary at a learned per-expert rate; with ``compress_over``
"experts" each event is routed over the experts by a softmax, so the experts are soft clusters of
the history, and with ``route_topk`` r > 0 only to its r best experts).
IMR: one :class:`~shortlist.ops.interest_memory.InterestMemory` of M slots shared by the layers;
each layer queries it at every position from that position's own state (so the selection at t
depends only on events <= t) and adds the k retrieved interest tokens as extra dispatch tokens.

Causality is exact: every operation is per position or a prefix sum, and the LDA's fixed
stabiliser (bounded logits) keeps each output bitwise independent of later events.
Incremental inference: :meth:`Elastic.init_state` / :meth:`Elastic.step` append one event per row in
O(layers (H (k + W) d + D^2 + sqrt(M) D)), equal to a full recompute (W = local_window); a hybrid's
full layers keep a KV cache instead, O(n d) a step after n events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from shortlist.models.base import register
from shortlist.models.next_item import (
    POSITION_FROM,
    NextItemRetriever,
    PaddingRotation,
    absolute_positions,
    check_next_item_config,
    is_full_layer,
)
from shortlist.ops.attention import FullAttentionCache, FullAttentionLayer
from shortlist.ops.dispatcher import IMPLS, MAX_LOGIT_BOUND, DispatcherState, check_compress
from shortlist.ops.dispatcher_layer import DispatcherAttentionLayer
from shortlist.ops.interest_memory import InterestMemory


@dataclass
class ElasticConfig:
    num_items: int  # N: items are 1..N
    max_len: int = 200  # positions per sequence (the most recent max_len events)
    dim: int = 64
    num_layers: int = 2
    num_heads: int = 2
    num_experts: int = 16  # k interest experts per layer (LDA bottleneck)
    memory_size: int = 0  # M interest-memory slots; 0 = no memory (IMR off)
    memory_topk: int = 0  # slots retrieved per position; 0 = num_experts
    product_keys: bool = True  # IMR by product keys (M must be a square) instead of M flat keys
    chunk_size: int = 64  # C: chunk length of the linear-time LDA
    # W: each position also dispatches from its W most recent events exactly (0 = experts alone)
    local_window: int = 0
    # hybrid: 0 = every block LDA; m = blocks m-1, 2m-1, ... full causal attention (KSA's full_every)
    full_every: int = 0
    # recency decay in the compress softmax: 0 = off; H >= 2 = the k experts' initial half-lives
    # spread geometrically from 2 events to H, learned per head and expert (ops/dispatcher.py)
    decay_half_life: float = 0.0
    # what the compress softmax normalises over: "events" (each expert a softmax over the prefix's
    # events) or "experts" (each event routed over the experts, multi-interest routing): ops/dispatcher
    compress_over: Literal["events", "experts"] = "events"
    # with compress_over "experts": r > 0 routes each event to its r best experts only (0 = all)
    route_topk: int = 0
    logit_bound: float = 16.0  # T: compress logits stay in [-T, T] (stability, see ops/dispatcher)
    # "reference": O(L^2), tests only; "triton": opt-in, CUDA (ops/dispatcher_triton.py)
    impl: Literal["fast", "reference", "triton"] = "fast"
    # where absolute positions count from: "oldest" (incremental steps keep them), "newest" (the
    # latest event always takes position max_len - 1, as in SASRec; no incremental step), "none"
    position_from: Literal["oldest", "newest", "none"] = "oldest"
    ffn_dim: int = 0  # 0 = 4 * dim
    dropout: float = 0.2
    loss: Literal["softmax", "sampled_softmax"] = "softmax"
    num_negatives: int = 128  # sampled softmax: uniform negatives shared by the batch
    in_batch_negatives: int = 0  # sampled softmax: targets of other positions used as negatives
    temperature: float = 1.0  # logits divided by this
    normalize: bool = False  # cosine scores (states and items L2-normalized), either loss

    def __post_init__(self) -> None:
        check_next_item_config(
            self, num_experts=1, memory_size=0, memory_topk=0, chunk_size=1, ffn_dim=0,
            local_window=0, full_every=0,
        )  # fmt: skip
        if self.decay_half_life and (
            isinstance(self.decay_half_life, bool)
            or not isinstance(self.decay_half_life, int | float)
            or not self.decay_half_life >= 2
        ):
            raise ValueError(
                "The 'decay_half_life' parameter of ElasticConfig must be 0 (no decay) or a "
                f"number of events >= 2. Got {self.decay_half_life!r} instead."
            )
        try:
            check_compress(self.compress_over, self.route_topk, self.num_experts)
        except ValueError as err:
            raise ValueError(f"ElasticConfig: {err}") from None
        if self.local_window and self.impl == "triton":
            raise ValueError(
                "The 'local_window' parameter of ElasticConfig needs impl='fast' (or 'reference'): "
                f"impl='triton' has no local window. Got local_window={self.local_window}."
            )
        if self.memory_size:
            if self.memory_k > self.memory_size:
                raise ValueError(
                    f"The 'memory_topk' parameter of ElasticConfig ({self.memory_k}) must be <= "
                    f"memory_size ({self.memory_size})."
                )
            side = math.isqrt(self.memory_size)
            if self.product_keys and (side * side != self.memory_size or self.dim % 2):
                raise ValueError(
                    "The 'memory_size' parameter of ElasticConfig must be a perfect square (and "
                    f"dim even) with product_keys=True. Got memory_size={self.memory_size}, "
                    f"dim={self.dim} instead."
                )
        if not 4.0 < self.logit_bound <= MAX_LOGIT_BOUND:
            raise ValueError(
                f"The 'logit_bound' parameter of ElasticConfig must be in (4, {MAX_LOGIT_BOUND}]. "
                f"Got {self.logit_bound!r} instead."
            )
        if self.position_from not in POSITION_FROM:
            raise ValueError(
                "The 'position_from' parameter of ElasticConfig must be one of "
                f"{list(POSITION_FROM)}. Got {self.position_from!r} instead."
            )
        if self.impl not in IMPLS:
            raise ValueError(
                f"The 'impl' parameter of ElasticConfig must be one of {IMPLS}. "
                f"Got {self.impl!r} instead."
            )

    @property
    def memory_k(self) -> int:
        """Slots retrieved per position (``memory_topk``, or ``num_experts`` when 0)."""
        return self.memory_topk or self.num_experts


@dataclass(frozen=True)
class ElasticState:
    """Incremental state of a batch of users: one LDA state per layer and the next position.

    layers: per layer, (B, H, k, d) numerators and (B, H, k) denominators; a hybrid's full layer
    holds its KV cache instead.
    positions: (B,) int64 number of real events seen so far per row.
    """

    layers: tuple[DispatcherState | FullAttentionCache, ...]
    positions: torch.Tensor


@dataclass(frozen=True)
class ElasticStep:
    """What :meth:`Elastic.step` returns: ``hidden`` (B, D) after the new event, and the state."""

    hidden: torch.Tensor
    state: ElasticState


class ElasticBlock(nn.Module):
    """Pre-LN block: x + LDA(LN(x), memory tokens), then x + FFN(LN(x))."""

    def __init__(self, c: ElasticConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(c.dim)
        self.lda = DispatcherAttentionLayer(
            c.dim, c.num_heads, c.num_experts, c.chunk_size, impl=c.impl,
            logit_bound=c.logit_bound, use_memory=c.memory_size > 0, window=c.local_window,
            decay_half_life=c.decay_half_life, compress_over=c.compress_over,
            route_topk=c.route_topk,
        )  # fmt: skip
        self.memory_query = nn.Linear(c.dim, c.dim) if c.memory_size else None
        self.ln2 = nn.LayerNorm(c.dim)
        ffn = c.ffn_dim or 4 * c.dim
        self.ffn = nn.Sequential(
            nn.Linear(c.dim, ffn), nn.GELU(), nn.Dropout(c.dropout), nn.Linear(ffn, c.dim)
        )
        self.drop = nn.Dropout(c.dropout)

    def _memory(self, h: torch.Tensor, memory: InterestMemory | None) -> torch.Tensor | None:
        """(..., D) normalised states -> (..., m, D) retrieved interest tokens, or None."""
        if memory is None or self.memory_query is None:
            return None
        return memory(self.memory_query(h))

    def forward(
        self, x: torch.Tensor, valid: torch.Tensor, memory: InterestMemory | None
    ) -> torch.Tensor:
        """(B, L, D), valid (B, L) -> (B, L, D)."""
        h = self.ln1(x)
        x = x + self.drop(self.lda(h, valid, self._memory(h, memory)))
        return x + self.drop(self.ffn(self.ln2(x)))

    def step(
        self,
        x: torch.Tensor,
        state: DispatcherState,
        valid: torch.Tensor,
        memory: InterestMemory | None,
    ) -> tuple[torch.Tensor, DispatcherState]:
        """(B, D) new position -> (B, D), new state."""
        h = self.ln1(x)
        y, state = self.lda.step(h, state, valid, self._memory(h, memory))
        x = x + self.drop(y)
        return x + self.drop(self.ffn(self.ln2(x))), state


class ElasticFullBlock(nn.Module):
    """A hybrid's full layer: pre-LN x + Attn(LN(x)) with full causal attention, then the FFN."""

    def __init__(self, c: ElasticConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(c.dim)
        self.attn = FullAttentionLayer(c.dim, c.num_heads)
        self.ln2 = nn.LayerNorm(c.dim)
        ffn = c.ffn_dim or 4 * c.dim
        self.ffn = nn.Sequential(
            nn.Linear(c.dim, ffn), nn.GELU(), nn.Dropout(c.dropout), nn.Linear(ffn, c.dim)
        )
        self.drop = nn.Dropout(c.dropout)

    def forward(
        self, x: torch.Tensor, valid: torch.Tensor, memory: InterestMemory | None
    ) -> torch.Tensor:
        """(B, L, D) left-padded, valid (B, L) -> (B, L, D); the interest memory is not read here.
        Rows are rotated to right padding for the attention (no real event sees padding)."""
        rot = PaddingRotation(valid.sum(1), x.shape[1])
        x = x + self.drop(rot.left(self.attn(rot.right(self.ln1(x)))))
        return x + self.drop(self.ffn(self.ln2(x)))

    def step(
        self,
        x: torch.Tensor,
        state: FullAttentionCache,
        valid: torch.Tensor,
        memory: InterestMemory | None,
    ) -> tuple[torch.Tensor, FullAttentionCache]:
        """(B, D) new position -> (B, D), the KV cache with it."""
        y, state = self.attn.step(self.ln1(x), state, valid)
        x = x + self.drop(y)
        return x + self.drop(self.ffn(self.ln2(x))), state


@register("elastic")
class Elastic(NextItemRetriever):
    config_class = ElasticConfig

    def __init__(self, config: ElasticConfig) -> None:
        super().__init__(config)
        c = config
        self.item_emb = nn.Embedding(c.num_items + 1, c.dim, padding_idx=0)
        self.pos_emb = nn.Embedding(c.max_len, c.dim) if c.position_from != "none" else None
        self.drop = nn.Dropout(c.dropout)
        self.memory = (
            InterestMemory(c.dim, c.memory_size, c.memory_k, product_keys=c.product_keys)
            if c.memory_size
            else None
        )
        self.blocks = nn.ModuleList(
            ElasticFullBlock(c) if is_full_layer(c.full_every, i) else ElasticBlock(c)
            for i in range(c.num_layers)
        )
        self.ln = nn.LayerNorm(c.dim)
        self.apply(self._init)

    def _embed(self, ids: torch.Tensor, pos: torch.Tensor | None) -> torch.Tensor:
        """ids, pos (...) -> (...) x D input states; ``pos`` is unused (may be None) without a
        position table (``position_from="none"``)."""
        x = self.item_emb(ids) * math.sqrt(self.config.dim)
        if self.pos_emb is None:
            return x
        assert pos is not None, "a model with a position table embeds positions"
        return x + self.pos_emb(pos)

    def encode(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, L) left-padded item ids -> (B, L, D) states (zero at padding); L <= max_len."""
        L = ids.shape[1]
        if self.config.max_len < L:
            raise ValueError(
                f"Sequences of length {L} exceed ELASTIC's max_len={self.config.max_len}; "
                "pad/truncate to max_len."
            )
        valid = ids > 0  # (B, L)
        pos = (
            None
            if self.pos_emb is None
            else absolute_positions(valid, self.config.max_len, self.config.position_from)
        )
        x = self.drop(self._embed(ids, pos)) * valid[..., None]
        for block in self.blocks:
            x = block(x, valid, self.memory) * valid[..., None]
        return self.ln(x) * valid[..., None]

    # -- incremental inference --------------------------------------------------------------------
    def init_state(self, batch: int, device: torch.device | str = "cpu") -> ElasticState:
        """The state of ``batch`` users with no event yet."""
        return ElasticState(
            layers=tuple(
                b.attn.init_cache(batch, device)
                if isinstance(b, ElasticFullBlock)
                else b.lda.init_state(batch, device)
                for b in self.blocks
            ),
            positions=torch.zeros(batch, dtype=torch.long, device=device),
        )

    def step(self, state: ElasticState, items: torch.Tensor) -> ElasticStep:
        """Append one event per row: items (B,) (0 = no event for that row).

        Returns the (B, D) state after the event (what :meth:`encode` gives at that position) and
        the new state. Cost per event: O(layers (H (k + W) d + D^2)), independent of the history
        length, plus O(n d) for each full layer of a hybrid after n events.
        """
        if self.config.position_from == "newest":
            raise ValueError(
                "Elastic.step needs position_from 'oldest' or 'none': with 'newest' every new "
                "event renumbers the earlier ones, so the states must be recomputed with encode()."
            )
        valid = items > 0  # (B,)
        if bool((state.positions[valid] >= self.config.max_len).any()):
            raise ValueError(
                f"ELASTIC's position table has max_len={self.config.max_len} entries; a row "
                "already holds that many events."
            )
        pos = state.positions.clamp(max=self.config.max_len - 1)
        x = self.drop(self._embed(items, pos)) * valid[:, None]  # (B, D)
        layers = []
        for block, layer_state in zip(self.blocks, state.layers, strict=True):
            x, new = block.step(x, layer_state, valid, self.memory)
            x = x * valid[:, None]
            layers.append(new)
        hidden = self.ln(x) * valid[:, None]
        return ElasticStep(
            hidden=hidden,
            state=ElasticState(layers=tuple(layers), positions=state.positions + valid.long()),
        )
