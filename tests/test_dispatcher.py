"""Causal Linear Dispatcher Attention: fast path == reference, incremental == full (each with and
without recency decay, and with the compress normalised over events or routed over experts),
causality, padding never leaks, the layer's two implementations agree."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from shortlist.ops.dispatcher import (
    DispatcherState,
    dispatcher_attention,
    dispatcher_attention_chunked,
    dispatcher_attention_reference,
    dispatcher_step,
    matmul_dtype,
)
from shortlist.ops.dispatcher_layer import DispatcherAttentionLayer

TOL = {"atol": 2e-5, "rtol": 1e-4}


def _inputs(seed: int, B: int, H: int, L: int, d: int, k: int, m: int, scale: float = 3.0):
    g = torch.Generator().manual_seed(seed)
    q, kc, zk, zv = (torch.randn(B, H, L, d, generator=g) for _ in range(4))
    expert_q = torch.randn(H, k, d, generator=g) * scale
    lengths = torch.randint(0, L + 1, (B,), generator=g)
    valid = torch.arange(L)[None, :] >= (L - lengths)[:, None]  # (B, L) left padding
    extra = None
    if m:
        extra = (torch.randn(B, H, L, m, d, generator=g), torch.randn(B, H, L, m, d, generator=g))
    return q, expert_q, kc, zk, zv, valid, extra


def _rates(seed: int, H: int, k: int) -> torch.Tensor:
    """(H, k) recency decay rates in [0, 1]: some above MAX_DECAY, which every path clamps alike."""
    return torch.rand(H, k, generator=torch.Generator().manual_seed(seed + 1))


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    B=st.integers(1, 3),
    H=st.integers(1, 2),
    L=st.integers(1, 40),
    d=st.integers(1, 6),
    k=st.integers(1, 5),
    m=st.integers(0, 3),
    chunk=st.integers(1, 17),
    bound=st.sampled_from([2.0, 8.0, 16.0, 40.0]),
    window=st.integers(0, 12),
    decayed=st.booleans(),
    over=st.sampled_from(["events", "experts"]),
)
def test_chunked_matches_reference(
    seed, B, H, L, d, k, m, chunk, bound, window, decayed, over
) -> None:
    q, eq, kc, zk, zv, valid, extra = _inputs(seed, B, H, L, d, k, m)
    ek, ev = extra if extra else (None, None)
    decay = _rates(seed, H, k) if decayed else None
    ref = dispatcher_attention_reference(
        q, eq, kc, zk, zv, valid, logit_bound=bound, extra_k=ek, extra_v=ev, window=window,
        decay=decay, compress_over=over,
    )  # fmt: skip
    fast = dispatcher_attention_chunked(
        q, eq, kc, zk, zv, valid, logit_bound=bound, extra_k=ek, extra_v=ev, chunk=chunk,
        window=window, decay=decay, compress_over=over,
    )  # fmt: skip
    torch.testing.assert_close(fast, ref, **TOL)
    assert torch.all(fast[~valid[:, None].expand(-1, H, -1)] == 0)  # padding outputs are zero


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    B=st.integers(1, 3),
    L=st.integers(1, 25),
    k=st.integers(1, 4),
    m=st.integers(0, 2),
    per_row_experts=st.booleans(),
    window=st.integers(0, 6),
    decayed=st.booleans(),
    over=st.sampled_from(["events", "experts"]),
)
def test_incremental_step_equals_full(
    seed, B, L, k, m, per_row_experts, window, decayed, over
) -> None:
    H, d = 2, 3
    q, eq, kc, zk, zv, valid, extra = _inputs(seed, B, H, L, d, k, m)
    if per_row_experts:
        eq = eq[None].expand(B, -1, -1, -1) + torch.randn(B, H, k, d)
    ek, ev = extra if extra else (None, None)
    decay = _rates(seed, H, k) if decayed else None
    full = dispatcher_attention_reference(
        q, eq, kc, zk, zv, valid, extra_k=ek, extra_v=ev, window=window, decay=decay,
        compress_over=over,
    )  # fmt: skip
    state = DispatcherState.zeros(B, H, k, d, window=window)
    outs = []
    for t in range(L):
        y, state = dispatcher_step(
            state, q[:, :, t], eq, kc[:, :, t], zk[:, :, t], zv[:, :, t], valid[:, t],
            extra_k=None if ek is None else ek[:, :, t],
            extra_v=None if ev is None else ev[:, :, t], decay=decay, compress_over=over,
        )  # fmt: skip
        outs.append(y)
    torch.testing.assert_close(torch.stack(outs, 2), full, **TOL)


@pytest.mark.parametrize("over", ["events", "experts"])
@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_exact_causality_and_no_padding_leak(impl: str, over: str) -> None:
    B, H, L, d, k = 2, 2, 23, 4, 3
    q, eq, kc, zk, zv, _, _ = _inputs(1, B, H, L, d, k, 0)
    valid = torch.ones(B, L, dtype=torch.bool)
    valid[1, :7] = False
    run = partial(dispatcher_attention, chunk=5, impl=impl, compress_over=over)
    base = run(q, eq, kc, zk, zv, valid)
    t = 12
    kc2, zk2, zv2 = kc.clone(), zk.clone(), zv.clone()
    for x in (kc2, zk2, zv2):
        x[:, :, t] += 5.0
    moved = run(q, eq, kc2, zk2, zv2, valid)
    assert torch.equal(moved[:, :, :t], base[:, :, :t])  # bitwise: no dependence on later events
    assert (moved[:, :, t:] - base[:, :, t:]).abs().amax() > 1e-3
    # Anything written into padding slots changes nothing.
    junk = [x.clone() for x in (q, kc, zk, zv)]
    for x in junk:
        x[1, :, :7] = 1e4
    again = run(junk[0], eq, junk[1], junk[2], junk[3], valid)
    assert torch.equal(again[1, :, 7:], base[1, :, 7:]) or torch.allclose(
        again[1, :, 7:], base[1, :, 7:], atol=1e-6
    )
    assert torch.all(again[1, :, :7] == 0)


def test_prefix_summary_matches_hand_computed() -> None:
    # One head, one expert, d = 1: the expert key is the softmax-weighted mean of the prefix.
    q = torch.ones(1, 1, 3, 1)
    kc = torch.tensor([0.0, 1.0, 2.0]).view(1, 1, 3, 1)
    zk = torch.zeros(1, 1, 3, 1)
    zv = torch.tensor([1.0, 2.0, 4.0]).view(1, 1, 3, 1)
    eq = torch.ones(1, 1, 1)
    w = torch.exp(torch.tensor([0.0, 1.0, 2.0]))
    expected = torch.stack(
        [(w[: t + 1] * zv[0, 0, : t + 1, 0]).sum() / w[: t + 1].sum() for t in range(3)]
    )
    for impl in ("reference", "fast"):
        out = dispatcher_attention(q, eq, kc, zk, zv, chunk=2, impl=impl)
        torch.testing.assert_close(out[0, 0, :, 0], expected)


def test_window_matches_hand_computed() -> None:
    # One head, one expert whose logits are all 0, d = 1, q = 1: position t dispatches over the
    # expert (key = mean of the zk so far, value = mean of the zv so far) and its last W = 2 events.
    zk = torch.tensor([0.5, -1.0, 2.0, 0.0]).view(1, 1, 4, 1)
    zv = torch.tensor([1.0, 3.0, -2.0, 5.0]).view(1, 1, 4, 1)
    q, kc, eq = torch.ones(1, 1, 4, 1), torch.zeros(1, 1, 4, 1), torch.zeros(1, 1, 1)
    expected = []
    for t in range(4):
        kz, vz = zk[0, 0, : t + 1, 0].mean(), zv[0, 0, : t + 1, 0].mean()
        recent = range(max(0, t - 1), t + 1)
        logits = torch.stack([kz, *(zk[0, 0, j, 0] for j in recent)])
        values = torch.stack([vz, *(zv[0, 0, j, 0] for j in recent)])
        expected.append((logits.softmax(0) * values).sum())
    for impl in ("reference", "fast"):
        out = dispatcher_attention(q, eq, kc, zk, zv, chunk=3, impl=impl, window=2)
        torch.testing.assert_close(out[0, 0, :, 0], torch.stack(expected))


def test_gradients_match_reference() -> None:
    B, H, L, d, k = 2, 2, 19, 3, 4
    inputs = _inputs(3, B, H, L, d, k, 2)
    q, eq, kc, zk, zv, valid, (ek, ev) = inputs
    grads = []
    for impl in ("reference", "fast"):
        leaves = [x.clone().requires_grad_() for x in (q, eq, kc, zk, zv, ek, ev)]
        out = dispatcher_attention(
            *leaves[:5], valid, extra_k=leaves[5], extra_v=leaves[6], chunk=4, impl=impl, window=3
        )
        (out * torch.linspace(-1, 1, d)).sum().backward()
        grads.append([x.grad for x in leaves])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, **TOL)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), L=st.integers(1, 30), chunk=st.integers(1, 9))
def test_layer_fast_matches_reference_and_steps(seed: int, L: int, chunk: int) -> None:
    torch.manual_seed(seed)
    window = seed % 5  # 0 (experts alone) to 4
    fast = DispatcherAttentionLayer(
        8, heads=2, num_experts=3, chunk=chunk, use_memory=True, window=window
    )
    ref = DispatcherAttentionLayer(
        8, heads=2, num_experts=3, chunk=chunk, impl="reference", use_memory=True, window=window
    )
    ref.load_state_dict(fast.state_dict())
    x = torch.randn(2, L, 8)
    mem = torch.randn(2, L, 2, 8)
    valid = torch.ones(2, L, dtype=torch.bool)
    valid[0, : L // 2] = False
    y = fast(x, valid, mem)
    assert y.shape == (2, L, 8)
    torch.testing.assert_close(y, ref(x, valid, mem), **TOL)
    state = fast.init_state(2)
    steps = []
    for t in range(L):
        out, state = fast.step(x[:, t], state, valid[:, t], mem[:, t])
        steps.append(out)
    real = valid[..., None]
    torch.testing.assert_close(torch.stack(steps, 1) * real, y * real, **TOL)


def test_layer_without_valid_and_errors() -> None:
    layer = DispatcherAttentionLayer(16, heads=4, num_experts=2, chunk=8)
    assert layer(torch.randn(3, 20, 16)).shape == (3, 20, 16)
    with pytest.raises(
        ValueError, match=r"'dim' parameter .* \(10\) must be divisible by heads \(4\)"
    ):
        DispatcherAttentionLayer(10, heads=4, num_experts=2)
    with pytest.raises(ValueError, match=r"'impl' parameter .* Got 'flash' instead"):
        DispatcherAttentionLayer(16, heads=4, num_experts=2, impl="flash")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="use_memory=False"):
        layer(torch.randn(1, 4, 16), memory=torch.randn(1, 4, 2, 16))
    with pytest.raises(ValueError, match=r"chunk must be an int >= 1. Got 0 instead"):
        x = torch.randn(1, 1, 4, 2)
        dispatcher_attention(x, torch.randn(1, 2, 2), x, x, x, chunk=0)
    with pytest.raises(ValueError, match=r"'window' parameter .* int >= 0. Got -2 instead"):
        DispatcherAttentionLayer(8, heads=2, num_experts=2, window=-2)
    with pytest.raises(ValueError, match=r"impl='triton'\) has no local window"):
        DispatcherAttentionLayer(8, heads=2, num_experts=2, impl="triton", window=4)
    with pytest.raises(ValueError, match=r"window must be an int >= 0. Got -1 instead"):
        dispatcher_attention(*_inputs(0, 1, 1, 3, 2, 2, 0)[:6], window=-1)
    with pytest.raises(ValueError, match=r"impl must be one of"):
        dispatcher_attention(x, torch.randn(1, 2, 2), x, x, x, impl="flash")  # type: ignore[arg-type]


def test_bfloat16_chunked_stays_close_to_float32_reference() -> None:
    """bf16 inputs take bf16 matmul operands (``matmul_dtype``) with float32 prefix sums: the
    result stays within bf16 rounding of the float32 reference on the same (rounded) inputs."""
    assert matmul_dtype(torch.bfloat16) == torch.bfloat16
    assert matmul_dtype(torch.float16) == torch.float32 == matmul_dtype(torch.float32)
    B, H, L, d, k = 2, 2, 150, 16, 4
    q, eq, kc, zk, zv = _inputs(3, B, H, L, d, k, 0)[:5]
    q, kc, zk, zv = (t.to(torch.bfloat16) for t in (q, kc, zk, zv))
    valid = torch.ones(B, L, dtype=torch.bool)
    valid[1, :7] = False
    fast = dispatcher_attention_chunked(q, eq, kc, zk, zv, valid, chunk=32)
    assert fast.dtype == torch.bfloat16
    ref = dispatcher_attention_reference(*(t.float() for t in (q, eq, kc, zk, zv)), valid)
    scale = ref.abs().max()
    assert (fast.float() - ref).abs().max() / scale < 3e-2
    assert fast[1, :, :7].abs().max() == 0
