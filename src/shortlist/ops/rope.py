"""Rotary position embedding (RoFormer, Su et al. 2021), as KSA applies it before caching.

Notation: B batch, H heads, T tokens, dh head width (even), half = dh / 2.

Positions are absolute token indices, so a key rotated once can be cached and reused by any later
query (the KV cache of ``models/ksa_cache.py`` relies on it): the score of a rotated pair depends
only on the position difference.

Two steps, so that the angle table is computed once per forward and shared by queries and keys:
:func:`rope_tables` builds cos/sin of ``position * base**(-i/half)`` in float64 (positions up to
10^6 and more keep full precision), :func:`apply_rope` rotates channel pairs ``(i, i + half)`` with
them. The table is a custom op, opaque to ``torch.compile``: inlined into the elementwise kernel,
the float64 cos/sin would be recomputed for every one of the B*H*T*dh elements (the largest item
of a compiled KSA step at L = 16k in the H200 profile of benchmarks/gpu/profile.sh).
"""

from __future__ import annotations

import torch


def rope_tables(
    positions: torch.Tensor, half: int, base: float = 10_000.0, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the rotation angles, each (*positions.shape, half) in ``dtype``.

    Args:
        positions: (T,) or (B, T) absolute positions (any integer or float dtype).
        half: dh / 2, the number of rotated channel pairs.
        base: the frequency base (10,000 in RoFormer, Qwen3 and the KSA release).
        dtype: dtype of the returned tables (the dtype of the tensors they will rotate).
    """
    return _rope_tables_op(positions, half, float(base), dtype)


@torch.library.custom_op("shortlist::rope_tables", mutates_args=())
def _rope_tables_op(
    positions: torch.Tensor, half: int, base: float, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    # A custom op is opaque to torch.compile: its float64 table is computed once, as its own
    # kernels, inside the graph (no graph break, CUDA-graph safe), and never inlined per element.
    inv_freq = base ** (-torch.arange(half, device=positions.device, dtype=torch.float64) / half)
    angles = positions.to(torch.float64)[..., None] * inv_freq  # (..., T, half)
    return angles.cos().to(dtype), angles.sin().to(dtype)


@_rope_tables_op.register_fake
def _(
    positions: torch.Tensor, half: int, base: float, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (*positions.shape, half)
    return positions.new_empty(shape, dtype=dtype), positions.new_empty(shape, dtype=dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs ``(i, i + half)`` of ``x`` (..., dh) by the angles of ``cos``/``sin``.

    ``cos`` and ``sin`` (..., half) must broadcast against ``x[..., :half]``; e.g. x (B, T, 2, H, dh)
    (queries and keys together, before the head permute) with tables (T, 1, 1, half).
    """
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


def rotary(x: torch.Tensor, positions: torch.Tensor, base: float = 10_000.0) -> torch.Tensor:
    """Rotate channel pairs ``(i, i + dh/2)`` of ``x`` by ``position * base**(-2i/dh)``.

    Args:
        x: (B, H, T, dh) queries or keys, dh even.
        positions: (T,) or (B, T) absolute positions (any integer or float dtype).
        base: the frequency base.

    Returns:
        (B, H, T, dh), same dtype as ``x``.
    """
    dh = x.shape[-1]
    if dh % 2:
        raise ValueError(f"rotary needs an even head width. Got dh={dh} instead.")
    cos, sin = rope_tables(positions, dh // 2, base, x.dtype)  # (T, half) or (B, T, half)
    if cos.dim() == 3:
        cos, sin = cos[:, None], sin[:, None]  # (B, 1, T, half)
    return apply_rope(x, cos, sin)
