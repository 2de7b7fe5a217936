"""The full-attention baseline layer: SDPA path == naive path, causality, bad arguments."""

from __future__ import annotations

import pytest
import torch

from shortlist.ops.attention import FullAttentionLayer, causal_attention


@pytest.mark.parametrize("L", [1, 7, 33])
def test_sdpa_matches_naive(L: int) -> None:
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, L, 8, dtype=torch.float64) for _ in range(3))
    torch.testing.assert_close(
        causal_attention(q, k, v, "sdpa"), causal_attention(q, k, v, "naive")
    )


def test_layer_is_causal_and_impls_agree() -> None:
    torch.manual_seed(0)
    fast = FullAttentionLayer(16, 2, impl="sdpa").double()
    slow = FullAttentionLayer(16, 2, impl="naive").double()
    slow.load_state_dict(fast.state_dict())
    x = torch.randn(2, 12, 16, dtype=torch.float64)
    y = fast(x)
    torch.testing.assert_close(y, slow(x))
    x2 = x.clone()
    x2[:, 7] += 1.0
    y2 = fast(x2)
    assert torch.equal(y[:, :7], y2[:, :7]) and not torch.allclose(y[:, 7:], y2[:, 7:])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="divisible by heads 3"):
        FullAttentionLayer(16, 3)
    with pytest.raises(ValueError, match="got 'flash'"):
        FullAttentionLayer(16, 2, impl="flash")  # type: ignore[arg-type]
