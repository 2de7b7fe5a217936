"""Interest Memory Retrieval (IMR): top-k slots of an M-slot memory, with product keys.

ELASTIC (arXiv 2408.09380, withdrawn) retrieves a "vast learnable interest memory bank" sparsely
per user. Only that is verified (abstract); the product-key retrieval (Lample et al., "Large Memory
Layers with Product Keys", NeurIPS 2019) is the reconstruction of PAPERS.md section 1. Where the
retrieved tokens enter the model (per-position dispatch tokens) is this project's causal design,
see :mod:`shortlist.models.elastic`.

Notation: Q queries (any leading shape ...), D query width (even for product keys), S = sqrt(M)
sub-keys per half, k slots retrieved.

Product keys: slot (a, b), index ``a S + b``, has key ``[K1[a]; K2[b]]``, so its score for a query
``[q1; q2]`` is ``q1.K1[a] + q2.K2[b]``. The top-k of the S^2 sums lies inside (top-k of the q1
scores) x (top-k of the q2 scores): any pair outside has k pairs of that product set above it. So
scoring 2 S sub-keys and k^2 candidates gives the exact top-k in O(S D + k^2) instead of O(S^2 D).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Slots:
    """Retrieved memory slots: ``scores`` (..., k) best first and ``indices`` (..., k) in [0, M)."""

    scores: torch.Tensor
    indices: torch.Tensor


def _check_k(k: int, available: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= available:
        raise ValueError(f"k must be an int in [1, {available}]. Got {k!r} instead.")


def flat_topk(query: torch.Tensor, keys: torch.Tensor, k: int) -> Slots:
    """Brute force: score all M keys. query (..., D), keys (M, D) -> Slots (..., k)."""
    _check_k(k, keys.shape[0])
    top = torch.topk(query @ keys.T, k, dim=-1)
    return Slots(scores=top.values, indices=top.indices)


def product_key_topk_reference(
    query: torch.Tensor, keys1: torch.Tensor, keys2: torch.Tensor, k: int
) -> Slots:
    """Product-key scores of all M = S^2 slots, then top-k (tests only; O(S^2) per query).

    Args:
        query: (..., D); its halves score against ``keys1`` (S, D/2) and ``keys2`` (S, D/2).
    """
    half = keys1.shape[1]
    s1 = query[..., :half] @ keys1.T  # (..., S)
    s2 = query[..., half:] @ keys2.T  # (..., S)
    full = (s1[..., :, None] + s2[..., None, :]).flatten(-2)  # (..., S*S): index a S + b
    _check_k(k, full.shape[-1])
    top = torch.topk(full, k, dim=-1)
    return Slots(scores=top.values, indices=top.indices)


def product_key_topk(
    query: torch.Tensor, keys1: torch.Tensor, keys2: torch.Tensor, k: int
) -> Slots:
    """Exact top-k over the S^2 product keys from 2 S sub-key scores and k'^2 candidates.

    Args:
        query: (..., D) with D = 2 * keys1.shape[1].
        keys1, keys2: (S, D/2) sub-key tables.
        k: slots to return, 1 <= k <= S^2.

    Returns:
        :class:`Slots` (..., k), equal to :func:`product_key_topk_reference` (up to ties).
    """
    S, half = keys1.shape
    if keys2.shape != keys1.shape or query.shape[-1] != 2 * half:
        raise ValueError(
            f"product keys need keys1, keys2 of one shape (S, D/2) and queries (..., D); got "
            f"keys1 {tuple(keys1.shape)}, keys2 {tuple(keys2.shape)}, query {tuple(query.shape)}."
        )
    _check_k(k, S * S)
    kk = min(k, S)  # the top-k of the sums needs at most the top-k of each half
    t1 = torch.topk(query[..., :half] @ keys1.T, kk, dim=-1)  # (..., kk)
    t2 = torch.topk(query[..., half:] @ keys2.T, kk, dim=-1)
    cand = (t1.values[..., :, None] + t2.values[..., None, :]).flatten(-2)  # (..., kk^2)
    idx = (t1.indices[..., :, None] * S + t2.indices[..., None, :]).flatten(-2)
    top = torch.topk(cand, k, dim=-1)
    return Slots(scores=top.values, indices=idx.gather(-1, top.indices))


class InterestMemory(nn.Module):
    """An M-slot memory of interest vectors, read by top-k retrieval.

    Args:
        dim: D, query and value width.
        size: M slots; a perfect square with ``product_keys`` (M = S^2).
        topk: k slots per query.
        product_keys: two sub-key tables of S = sqrt(M) (fast) instead of M flat keys.

    ``forward(query (..., D)) -> (..., k, D)``: the k retrieved values, each scaled by the softmax
    of the k retrieval scores (so the keys get gradients).
    """

    def __init__(self, dim: int, size: int, topk: int, *, product_keys: bool = True) -> None:
        super().__init__()
        for name, value in (("dim", dim), ("size", size), ("topk", topk)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"The {name!r} parameter of InterestMemory must be an int >= 1. "
                    f"Got {value!r} instead."
                )
        if topk > size:
            raise ValueError(
                f"The 'topk' parameter of InterestMemory must be <= size ({size}). Got {topk}."
            )
        self.dim, self.size, self.topk, self.product_keys = dim, size, topk, product_keys
        if product_keys:
            side = math.isqrt(size)
            if side * side != size or dim % 2:
                raise ValueError(
                    "InterestMemory with product_keys needs a square size (M = S^2) and an even "
                    f"dim. Got size={size}, dim={dim} instead."
                )
            self.keys1 = nn.Parameter(torch.randn(side, dim // 2) / math.sqrt(dim // 2))
            self.keys2 = nn.Parameter(torch.randn(side, dim // 2) / math.sqrt(dim // 2))
        else:
            self.keys = nn.Parameter(torch.randn(size, dim) / math.sqrt(dim))
        self.values = nn.Embedding(size, dim)
        nn.init.normal_(self.values.weight, std=0.02)

    def retrieve(self, query: torch.Tensor) -> Slots:
        """(..., D) -> the top-k slots."""
        if self.product_keys:
            return product_key_topk(query, self.keys1, self.keys2, self.topk)
        return flat_topk(query, self.keys, self.topk)

    def forward(self, query: torch.Tensor) -> torch.Tensor:
        slots = self.retrieve(query)
        weight = slots.scores.softmax(-1)  # (..., k)
        return weight[..., None] * self.values(slots.indices)  # (..., k, D)
