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
