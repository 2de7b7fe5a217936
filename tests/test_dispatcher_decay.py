"""Recency decay of the dispatcher's expert summaries: gradients of the fast path == the
reference's, exact causality, a hand-computed example, the two-level chunk state, numerical safety at
the largest rate, and the layer / config / trainer plumbing. (Fast == reference and incremental ==
full with decay: the parity tests of tests/test_dispatcher.py draw decay on and off.)"""

from __future__ import annotations

import math

import pytest
import torch

from shortlist.models import build_model
from shortlist.ops.dispatcher import (
    DECAY_MAX_CHUNK,
    MAX_DECAY,
    dispatcher_attention,
    dispatcher_attention_chunked,
    dispatcher_attention_reference,
)
from shortlist.ops.dispatcher_layer import DispatcherAttentionLayer
from test_dispatcher import _inputs as dispatcher_inputs
from test_dispatcher import _rates

TOL = {"atol": 2e-5, "rtol": 1e-4}


def _inputs(seed: int, B: int, H: int, L: int, d: int, k: int, m: int):
    """test_dispatcher's inputs plus (H, k) rates: q, expert_q, kc, zk, zv, valid, decay, extra."""
    q, eq, kc, zk, zv, valid, extra = dispatcher_inputs(seed, B, H, L, d, k, m)
    return q, eq, kc, zk, zv, valid, _rates(seed, H, k), extra


def test_decayed_gradients_match_reference() -> None:
    q, eq, kc, zk, zv, valid, decay, _ = _inputs(3, 2, 2, 29, 4, 3, 0)
    leaves = [t.clone().requires_grad_() for t in (q, eq, kc, zk, zv, decay * 0.6)]
    out_grad = torch.randn(q.shape, generator=torch.Generator().manual_seed(4))

    def grads(fn) -> list[torch.Tensor]:
        for t in leaves:
            t.grad = None
        (fn(*leaves) * out_grad).sum().backward()
        return [t.grad.clone() for t in leaves]

    ref = grads(lambda q, e, kc, zk, zv, dec: dispatcher_attention_reference(
        q, e, kc, zk, zv, valid, window=2, decay=dec))  # fmt: skip
    fast = grads(lambda q, e, kc, zk, zv, dec: dispatcher_attention_chunked(
        q, e, kc, zk, zv, valid, window=2, decay=dec, chunk=6))  # fmt: skip
    for name, a, b in zip(("q", "expert_q", "kc", "zk", "zv", "decay"), ref, fast, strict=True):
        torch.testing.assert_close(b, a, atol=5e-5, rtol=1e-4, msg=f"gradient of {name}")
    assert ref[-1].abs().amax() > 1e-3  # the rates are learned: their gradient is not zero


def test_decay_matches_hand_computed() -> None:
    # One head, one expert with all compress logits 0 and q = 0 (so the output is the expert's
    # value): at t the summary is sum_j 2^{-(t-j)/h} zv_j / sum_j 2^{-(t-j)/h}, half-life h = 2.
    zv = torch.tensor([1.0, 2.0, 4.0, -3.0]).view(1, 1, 4, 1)
    q, kc, zk, eq = torch.zeros(1, 1, 4, 1), torch.zeros(1, 1, 4, 1), zv * 0, torch.ones(1, 1, 1)
    rate = math.log(2.0) / 2.0
    expected = []
    for t in range(4):
        w = torch.tensor([2.0 ** (-(t - j) / 2.0) for j in range(t + 1)])
        expected.append((w * zv[0, 0, : t + 1, 0]).sum() / w.sum())
    for impl in ("reference", "fast"):
        out = dispatcher_attention(
            q, eq, kc, zk, zv, chunk=3, impl=impl, decay=torch.full((1, 1), rate)
        )
        torch.testing.assert_close(out[0, 0, :, 0], torch.stack(expected))


@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_decayed_exact_causality(impl: str) -> None:
    q, eq, kc, zk, zv, _, decay, _ = _inputs(1, 2, 2, 23, 4, 3, 0)
    valid = torch.ones(2, 23, dtype=torch.bool)
    valid[1, :7] = False
    base = dispatcher_attention(q, eq, kc, zk, zv, valid, chunk=5, impl=impl, decay=decay)
    kc2, zk2, zv2 = kc.clone(), zk.clone(), zv.clone()
    for x in (kc2, zk2, zv2):
        x[:, :, 12] += 5.0
    moved = dispatcher_attention(q, eq, kc2, zk2, zv2, valid, chunk=5, impl=impl, decay=decay)
    assert torch.equal(moved[:, :, :12], base[:, :, :12])  # bitwise
    assert (moved[:, :, 12:] - base[:, :, 12:]).abs().amax() > 1e-3


def test_zero_decay_is_no_decay_and_rates_are_clamped() -> None:
    q, eq, kc, zk, zv, valid, _, _ = _inputs(5, 2, 2, 30, 4, 3, 0)
    plain = dispatcher_attention_chunked(q, eq, kc, zk, zv, valid, chunk=7)
    zero = dispatcher_attention_chunked(q, eq, kc, zk, zv, valid, chunk=7, decay=torch.zeros(2, 3))
    torch.testing.assert_close(zero, plain, **TOL)
    big = dispatcher_attention_chunked(
        q, eq, kc, zk, zv, valid, chunk=7, decay=torch.full((2, 3), 5.0)
    )
    at_max = dispatcher_attention_chunked(
        q, eq, kc, zk, zv, valid, chunk=7, decay=torch.full((2, 3), MAX_DECAY)
    )
    torch.testing.assert_close(big, at_max)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_largest_rate_long_chunks_stay_finite(dtype: torch.dtype) -> None:
    # the intra-chunk factors reach e^{MAX_DECAY (C - 1)}; chunks are capped at DECAY_MAX_CHUNK
    L = 3 * DECAY_MAX_CHUNK + 5
    q, eq, kc, zk, zv, valid, _, _ = _inputs(6, 1, 2, L, 8, 4, 0)
    decay = torch.full((2, 4), MAX_DECAY)
    args = [t.to(dtype) for t in (q, eq, kc, zk, zv)]
    out = dispatcher_attention_chunked(*args, valid, chunk=4 * DECAY_MAX_CHUNK, decay=decay)
    assert torch.isfinite(out).all()
    ref = dispatcher_attention_chunked(q, eq, kc, zk, zv, valid, chunk=16, decay=decay)
    tol = {"atol": 2e-5, "rtol": 1e-4} if dtype == torch.float32 else {"atol": 0.1, "rtol": 0.05}
    torch.testing.assert_close(out.float(), ref, **tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_left_padded_rows_at_the_largest_rate_have_finite_gradients(dtype: torch.dtype) -> None:
    # whole chunks of front padding (den = 0 there, clamped): zero outputs and finite gradients,
    # equal to the reference's in float32 (bfloat16's are as far from them as without decay)
    L, C = 3 * 64 + 7, 64
    q, eq, kc, zk, zv, _, _, _ = _inputs(8, 2, 2, L, 8, 4, 0)
    valid = torch.ones(2, L, dtype=torch.bool)
    valid[0, : C + 9] = False  # row 0: the first chunk and part of the second are padding
    decay = torch.full((2, 4), MAX_DECAY)
    leaves = [t.to(dtype).requires_grad_() for t in (q, eq, kc, zk, zv)]
    out = dispatcher_attention_chunked(*leaves, valid, chunk=C, decay=decay)
    assert (out[0, :, : C + 9] == 0).all()
    out.float().square().sum().backward()
    grads = [t.grad for t in leaves]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    ref_leaves = [t.detach().float().requires_grad_() for t in leaves]
    ref = dispatcher_attention_reference(*ref_leaves, valid, decay=decay)
    ref.square().sum().backward()
    tol = TOL if dtype == torch.float32 else {"atol": 0.1, "rtol": 0.05}
    torch.testing.assert_close(out.float(), ref, **tol)
    if dtype != torch.float32:
        return
    for g, r in zip(grads, ref_leaves, strict=True):
        assert g is not None and r.grad is not None
        scale = r.grad.abs().max().clamp_min(1.0)
        torch.testing.assert_close(g.float() / scale, r.grad / scale, **tol)


def test_decay_shape_errors() -> None:
    q, eq, kc, zk, zv, valid, _, _ = _inputs(7, 1, 2, 5, 4, 3, 0)
    with pytest.raises(ValueError, match=r"decay must have shape \(H, k\) = \(2, 3\)"):
        dispatcher_attention(q, eq, kc, zk, zv, valid, decay=torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"decay_half_life.*>= 2"):
        DispatcherAttentionLayer(8, 2, 3, decay_half_life=1.5)
    with pytest.raises(ValueError, match="decay_half_life"):
        build_model("elastic", num_items=10, dim=8, decay_half_life=-4)


def test_layer_initial_half_lives_and_incremental_model() -> None:
    layer = DispatcherAttentionLayer(8, 2, 4, decay_half_life=64)
    rates = layer.decay_rates()
    assert rates is not None and rates.shape == (2, 4)
    # half-lives 2, 8, 32, 64... spread geometrically from 2 to 64: 2^(1 + 5 i / 3)
    expected = math.log(2.0) / torch.tensor([2.0 ** (1 + 5 * i / 3) for i in range(4)])
    torch.testing.assert_close(rates[0], expected)
    assert DispatcherAttentionLayer(8, 2, 4).decay_rates() is None
    single = DispatcherAttentionLayer(8, 2, 1, decay_half_life=64).decay_rates()
    assert single is not None
    torch.testing.assert_close(single, torch.full((2, 1), math.log(2.0) / 64))

    model = build_model(
        "elastic", num_items=30, max_len=24, dim=8, num_heads=2, num_experts=3, chunk_size=5,
        decay_half_life=16, local_window=2, dropout=0.0,
    )  # fmt: skip
    model.eval()
    ids = torch.randint(1, 31, (3, 24), generator=torch.Generator().manual_seed(8))
    ids[0, :9] = 0  # left padding
    full = model.encode(ids)
    state = model.init_state(3)
    steps = []
    for t in range(24):
        out = model.step(state, ids[:, t])
        state = out.state
        steps.append(out.hidden)
    torch.testing.assert_close(torch.stack(steps, 1), full, **TOL)
    names = [n for n, _ in model.named_parameters() if "decay_logit" in n]
    assert len(names) == model.config.num_layers  # one learned (H, k) table per layer


@pytest.mark.parametrize("n", [1, 2, 3, 5, 16, 17, 45, 100])
def test_two_level_decayed_prefix_equals_one_transition(n: int) -> None:
    # the chunk-level state (one transition up to DECAY_ONE_LEVEL_CHUNKS, then blocks of about
    # sqrt(n) chunks) against the definition
    from shortlist.ops.dispatcher import _decayed_prefix

    g = torch.Generator().manual_seed(n)
    x = torch.randn(2, 3, n, 4, 5, generator=g)
    lam = torch.rand(3, 4, generator=g) * 2.0
    expected = torch.zeros_like(x)
    for c in range(n):
        for earlier in range(c):
            expected[:, :, c] += (
                torch.exp(-lam * (c - 1 - earlier))[None, :, :, None] * x[:, :, earlier]
            )
    torch.testing.assert_close(_decayed_prefix(x, lam), expected, **TOL)
    # both ways on every n: one (n, n) transition, and two levels from the first chunk on
    torch.testing.assert_close(_decayed_prefix(x, lam, one_level_max=n), expected, **TOL)
    torch.testing.assert_close(_decayed_prefix(x, lam, one_level_max=0), expected, **TOL)


def test_one_level_threshold_is_read_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # benchmarks/longseq_speed.py --decay-one-level-chunks sets the module constant for a run:
    # one (n, n) transition builds one matrix, two levels build two
    from shortlist.ops import dispatcher

    built: list[int] = []
    original = dispatcher._transition
    monkeypatch.setattr(
        dispatcher, "_transition", lambda lam, n: built.append(n) or original(lam, n)
    )
    x, lam = torch.randn(1, 2, 9, 3, 4), torch.rand(2, 3)
    dispatcher._decayed_prefix(x, lam)  # 9 <= DECAY_ONE_LEVEL_CHUNKS (64)
    assert built == [9]
    built.clear()
    monkeypatch.setattr(dispatcher, "DECAY_ONE_LEVEL_CHUNKS", 4)
    dispatcher._decayed_prefix(x, lam)
    assert built == [3, 3]  # blocks of G = 3 chunks, m = 3 blocks


def test_decay_rates_get_no_weight_decay() -> None:
    from shortlist.train.trainer import weight_decay_groups

    model = build_model("elastic", num_items=20, dim=8, num_heads=2, decay_half_life=16)
    decay, no_decay = weight_decay_groups(model)
    names = {id(p): n for n, p in model.named_parameters()}
    plain = {names[id(p)] for p in no_decay}
    assert {n for n in names.values() if n.endswith("decay_logit")} <= plain
    assert "blocks.0.lda.qkv.weight" in {names[id(p)] for p in decay}
    assert len(decay) + len(no_decay) == len(names)
