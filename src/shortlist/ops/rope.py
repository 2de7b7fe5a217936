"""Rotary position embedding (RoFormer, Su et al. 2021), as KSA applies it before caching.

Notation: B batch, H heads, T tokens, dh head width (even).

Positions are absolute token indices, so a key rotated once can be cached and reused by any later
query (the KV cache of ``models/ksa_cache.py`` relies on it): the score of a rotated pair depends
only on the position difference.
"""

from __future__ import annotations

import torch


def rotary(x: torch.Tensor, positions: torch.Tensor, base: float = 10_000.0) -> torch.Tensor:
    """Rotate channel pairs ``(i, i + dh/2)`` of ``x`` by ``position * base**(-2i/dh)``.

    Args:
        x: (B, H, T, dh) queries or keys, dh even.
        positions: (T,) or (B, T) absolute positions (any integer or float dtype).
        base: the frequency base (10,000 in RoFormer, Qwen3 and the KSA release).

    Returns:
        (B, H, T, dh), same dtype as ``x``. Angles are computed in float64 and then cast, so
        positions up to 10^6 and more keep full precision.
    """
    dh = x.shape[-1]
    if dh % 2:
        raise ValueError(f"rotary needs an even head width. Got dh={dh} instead.")
    half = dh // 2
    inv_freq = base ** (-torch.arange(half, device=x.device, dtype=torch.float64) / half)  # (dh/2,)
    angles = positions.to(torch.float64)[..., None] * inv_freq  # (T, dh/2) or (B, T, dh/2)
    if angles.dim() == 3:
        angles = angles[:, None]  # (B, 1, T, dh/2)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
