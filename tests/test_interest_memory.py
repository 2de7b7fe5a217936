"""Interest Memory Retrieval: product-key top-k == brute-force top-k over all M slots."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from shortlist.ops.interest_memory import (
    InterestMemory,
    flat_topk,
    product_key_topk,
    product_key_topk_reference,
)


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    side=st.integers(1, 12),
    half=st.integers(1, 6),
    k=st.integers(1, 20),
    lead=st.sampled_from([(), (3,), (2, 5)]),
)
def test_product_keys_equal_brute_force(seed, side, half, k, lead) -> None:
    k = min(k, side * side)
    g = torch.Generator().manual_seed(seed)
    keys1, keys2 = torch.randn(side, half, generator=g), torch.randn(side, half, generator=g)
    query = torch.randn(*lead, 2 * half, generator=g)
    fast = product_key_topk(query, keys1, keys2, k)
    ref = product_key_topk_reference(query, keys1, keys2, k)
    assert fast.indices.shape == ref.indices.shape == (*lead, k)
    torch.testing.assert_close(fast.scores, ref.scores)
    assert torch.equal(fast.indices, ref.indices)  # random floats: no ties
    # ... and the reference is the flat brute force over the concatenated keys [K1[a]; K2[b]].
    flat = torch.cat([keys1.repeat_interleave(side, 0), keys2.repeat(side, 1)], 1)  # (M, D)
    brute = flat_topk(query, flat, k)
    assert torch.equal(brute.indices, ref.indices)
    torch.testing.assert_close(brute.scores, ref.scores)


def test_hand_checked_product_keys() -> None:
    keys1 = torch.tensor([[1.0], [3.0]])  # S = 2, D = 2
    keys2 = torch.tensor([[0.0], [2.0]])
    # slot (a, b) scores K1[a] + K2[b] for q = [1, 1]: (0,0) 1, (0,1) 3, (1,0) 3, (1,1) 5
    slots = product_key_topk(torch.tensor([1.0, 1.0]), keys1, keys2, 1)
    assert slots.indices.tolist() == [3] and slots.scores.tolist() == [5.0]  # slot (1, 1)


@pytest.mark.parametrize("product_keys", [True, False])
def test_memory_module_shapes_and_gradients(product_keys: bool) -> None:
    torch.manual_seed(0)
    mem = InterestMemory(8, 16, 3, product_keys=product_keys)
    q = torch.randn(2, 5, 8)
    out = mem(q)
    assert out.shape == (2, 5, 3, 8)
    out.sum().backward()
    keys = [mem.keys1, mem.keys2] if product_keys else [mem.keys]
    assert all(k.grad is not None and k.grad.abs().sum() > 0 for k in keys)
    assert mem.values.weight.grad is not None


def test_memory_errors() -> None:
    with pytest.raises(ValueError, match=r"square size .* Got size=10, dim=8"):
        InterestMemory(8, 10, 2)
    with pytest.raises(ValueError, match=r"'topk' parameter of InterestMemory must be <= size"):
        InterestMemory(8, 4, 5)
    with pytest.raises(ValueError, match=r"k must be an int in \[1, 4\]. Got 5 instead"):
        product_key_topk(torch.randn(4), torch.randn(2, 2), torch.randn(2, 2), 5)
