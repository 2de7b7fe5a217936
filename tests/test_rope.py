"""Rotary position embedding: the one-pass (queries and keys together) form equals the per-tensor
form, rotations keep norms, scores depend only on the position difference, and large positions
keep float64 precision."""

from __future__ import annotations

import math

import pytest
import torch

from shortlist.ops.rope import apply_rope, rope_tables, rotary


def test_joint_qk_layout_equals_per_tensor_rotary() -> None:
    B, T, H, dh = 2, 7, 3, 8
    qk = torch.randn(B, T, 2, H, dh)
    pos = torch.arange(5, 5 + T)
    cos, sin = rope_tables(pos, dh // 2)
    joint = apply_rope(qk, cos[:, None, None], sin[:, None, None]).permute(2, 0, 3, 1, 4)
    for i in range(2):
        torch.testing.assert_close(joint[i], rotary(qk[:, :, i].transpose(1, 2), pos))


def test_hand_computed_rotation_and_relative_scores() -> None:
    # dh = 2: one pair (x0, x1) rotated by the angle `position` (inv_freq = 1)
    x = torch.tensor([[[[1.0, 0.0]]]])
    out = rotary(x, torch.tensor([1]))
    torch.testing.assert_close(out[0, 0, 0], torch.tensor([math.cos(1.0), math.sin(1.0)]))
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def score(i: int, j: int) -> float:
        return float((rotary(q, torch.tensor([i])) * rotary(k, torch.tensor([j]))).sum())

    assert score(10, 3) == pytest.approx(score(107, 100), abs=1e-4)
    torch.testing.assert_close(rotary(q, torch.tensor([12345])).norm(), q.norm())


def test_large_positions_keep_float64_precision() -> None:
    pos = torch.tensor([10**6 + 3])
    cos, sin = rope_tables(pos, 4, dtype=torch.float64)
    inv = [10_000.0 ** (-i / 4) for i in range(4)]
    expected = torch.tensor([[math.cos((10**6 + 3) * f) for f in inv]], dtype=torch.float64)
    torch.testing.assert_close(cos, expected, rtol=0, atol=1e-9)
    assert sin.shape == (1, 4)


def test_odd_head_width_is_rejected() -> None:
    with pytest.raises(ValueError, match="even head width"):
        rotary(torch.randn(1, 1, 2, 5), torch.arange(2))
