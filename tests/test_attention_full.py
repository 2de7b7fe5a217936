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


def test_step_with_a_cache_equals_the_forward_pass_with_skipped_steps() -> None:
    """Events appended one at a time (row 0 skips its first two steps) give what forward gives
    each row's real events; the cache grows by one entry a step and masks the skipped ones."""

    torch.manual_seed(0)
    layer = FullAttentionLayer(16, 2)
    x = torch.randn(2, 6, 16)
    valid = torch.tensor([[False, False, True, True, True, True], [True] * 6])
    cache, outs = layer.init_cache(2), []
    for t in range(6):
        y, cache = layer.step(x[:, t], cache, valid[:, t])
        outs.append(y)
    stepped = torch.stack(outs, 1)
    torch.testing.assert_close(stepped[0, 2:], layer(x[:1, 2:])[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(stepped[1], layer(x[1:])[0], atol=1e-5, rtol=1e-5)
    assert cache.keys.shape == (2, 2, 6, 8) and cache.valid.tolist() == valid.tolist()


def test_padding_rotation_by_hand() -> None:
    from shortlist.models.next_item import PaddingRotation

    ids = torch.tensor([[0, 0, 5, 6], [1, 2, 3, 4], [0, 0, 0, 9]])
    rot = PaddingRotation((ids > 0).sum(1), 4)
    assert rot.right(ids).tolist() == [[5, 6, 0, 0], [1, 2, 3, 4], [9, 0, 0, 0]]
    assert rot.valid.tolist() == [
        [True, True, False, False],
        [True] * 4,
        [True, False, False, False],
    ]
    states = torch.arange(24.0).view(3, 4, 2)
    torch.testing.assert_close(rot.left(rot.right(states)), states)
