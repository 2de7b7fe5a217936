"""Full causal self-attention as one sublayer: the baseline the long-sequence attentions are timed
against (``benchmarks/longseq_speed.py``).

Two implementations of the same function: ``"sdpa"`` (``F.scaled_dot_product_attention`` with
``is_causal``, the flash kernel on GPU) and ``"naive"`` (explicit (L, L) scores, mask and softmax,
the textbook form and the reference the SDPA path is tested against).

Notation: B batch, L positions, D = H * dh model width.

Example:
    >>> layer = FullAttentionLayer(64, 2, impl="naive")
    >>> layer(torch.randn(2, 10, 64)).shape
    torch.Size([2, 10, 64])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

FullImpl = Literal["sdpa", "naive"]


def causal_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, impl: FullImpl = "sdpa"
) -> torch.Tensor:
    """Causal softmax attention: (B, H, L, dh) x3 -> (B, H, L, dh); position t sees 0..t."""
    if impl == "sdpa":
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    if impl != "naive":
        raise ValueError(f"causal_attention: impl must be 'sdpa' or 'naive', got {impl!r}.")
    L = q.shape[-2]
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])  # (B, H, L, L)
    future = torch.ones(L, L, dtype=torch.bool, device=q.device).triu(1)
    return scores.masked_fill(future, float("-inf")).softmax(-1) @ v


@dataclass(frozen=True)
class FullAttentionCache:
    """The keys and values a :class:`FullAttentionLayer` has seen, for one event at a time.

    keys, values: (B, H, n, dh) after n steps; valid: (B, n) whether step j was a real event of
    that row (rows of a batch may skip a step). Grows by one entry a step: O(n) memory, O(n d)
    per step, as any full-attention KV cache.
    """

    keys: torch.Tensor
    values: torch.Tensor
    valid: torch.Tensor


class FullAttentionLayer(nn.Module):
    """Q/K/V projections, causal attention over all previous positions, output projection.

    Args:
        dim: D. heads: H (D % H == 0). impl: ``"sdpa"`` or ``"naive"``.
    """

    def __init__(self, dim: int, heads: int, impl: FullImpl = "sdpa") -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"FullAttentionLayer: dim {dim} must be divisible by heads {heads}.")
        if impl not in ("sdpa", "naive"):
            raise ValueError(f"FullAttentionLayer: impl must be 'sdpa' or 'naive', got {impl!r}.")
        self.heads, self.impl = heads, impl
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)

    def attention_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, L, D) -> what :meth:`attend` takes: q, k, v, each (B, H, L, dh) (views of one
        projection)."""
        B, L, D = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        return q, k, v

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor]:
        """The causal attention alone, this layer's path -> ((B, H, L, dh),)."""
        return (causal_attention(q, k, v, self.impl),)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, D) -> (B, L, D)."""
        B, L, D = x.shape
        (y,) = self.attend(*self.attention_inputs(x))  # (B, H, L, dh)
        return self.out(y.transpose(1, 2).reshape(B, L, D))

    def init_cache(self, batch: int, device: torch.device | str = "cpu") -> FullAttentionCache:
        """The cache of ``batch`` rows with no event yet."""
        dh = self.qkv.in_features // self.heads
        empty = torch.zeros(batch, self.heads, 0, dh, device=device)
        return FullAttentionCache(
            keys=empty, values=empty, valid=torch.zeros(batch, 0, dtype=torch.bool, device=device)
        )

    def step(
        self, x: torch.Tensor, cache: FullAttentionCache, valid: torch.Tensor
    ) -> tuple[torch.Tensor, FullAttentionCache]:
        """One new position per row: x (B, D), valid (B,) -> (B, D), the cache with it appended.

        A real event attends to the real events of its row so far and to itself, what
        :meth:`forward` gives the last position of a right-padded row; a row whose step is not an
        event (valid False) gets an output its caller discards, and its entry stays masked.
        """
        B, D = x.shape
        q, k, v = self.qkv(x).view(B, 3, self.heads, 1, D // self.heads).unbind(1)  # (B, H, 1, dh)
        keys = torch.cat((cache.keys.to(k.dtype), k), 2)
        values = torch.cat((cache.values.to(v.dtype), v), 2)
        seen = torch.cat((cache.valid, valid[:, None]), 1)  # (B, n + 1)
        allowed = seen.clone()
        allowed[:, -1] = True  # itself: a skipped row still has one key, no empty softmax
        scores = (q @ keys.transpose(-1, -2)) / math.sqrt(q.shape[-1])  # (B, H, 1, n + 1)
        scores = scores.masked_fill(~allowed[:, None, None, :], float("-inf"))
        y = (scores.softmax(-1) @ values).reshape(B, D)
        return self.out(y), FullAttentionCache(keys=keys, values=values, valid=seen)
