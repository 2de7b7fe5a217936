"""ELASTIC's compress routed over the experts (``compress_over="experts"``, ops/dispatcher.py):
each event's unit weight split over the experts by a softmax, each expert the mean of the events
by their routed weight. Checked against loops written out here in float64, by hand, for the
property it is for (a short interest keeps an expert of its own among many events), in gradients,
through the layer and the model (causality, fast == reference, step == full recompute, save/load),
and its errors. The op-level parity tests of tests/test_dispatcher.py draw it too."""

from __future__ import annotations

import math
import shutil
from functools import partial
from pathlib import Path

import pytest
import torch

from shortlist.models import build_model, load_model
from shortlist.ops.dispatcher import (
    DispatcherState,
    compress_weights,
    dispatcher_attention,
    dispatcher_attention_chunked,
    dispatcher_attention_reference,
    dispatcher_step,
    route_keep,
    route_level,
)
from shortlist.ops.dispatcher_layer import DispatcherAttentionLayer


def _loops(q, eq, kc, zk, zv, valid, bound, decay=None, topk=0):  # type: ignore[no-untyped-def]
    """The routed definition with explicit loops in float64 (no window, no extra tokens); with
    ``topk`` each event keeps its topk largest routing weights and gives the others e^{-2T} / k."""
    B, H, L, d = q.shape
    k = eq.shape[-2]
    out = torch.zeros(B, H, L, d, dtype=torch.float64)
    for b in range(B):
        for h in range(H):
            s = (kc[b, h].double() @ eq[h].double().T).clamp(-bound, bound)  # (L, k)
            r = s.softmax(-1)
            if topk:
                kept = r >= r.sort(-1, descending=True).values[:, topk - 1 : topk]
                r = torch.where(kept, r, math.exp(-2 * bound) / k)
            for t in range(L):
                if not valid[b, t]:
                    continue
                kz = torch.zeros(k, d, dtype=torch.float64)
                vz = torch.zeros(k, d, dtype=torch.float64)
                den = torch.zeros(k, dtype=torch.float64)
                for j in range(t + 1):
                    if not valid[b, j]:
                        continue
                    w = r[j].clone()
                    if decay is not None:
                        w = w * torch.exp(-decay[h].double().clamp(0, math.log(2)) * (t - j))
                    kz += w[:, None] * zk[b, h, j].double()
                    vz += w[:, None] * zv[b, h, j].double()
                    den += w
                kz, vz = kz / den[:, None], vz / den[:, None]
                p = (kz @ q[b, h, t].double()).softmax(0)
                out[b, h, t] = p @ vz
    return out


def _inputs(seed: int, B: int = 2, H: int = 2, L: int = 13, d: int = 3, k: int = 4):
    g = torch.Generator().manual_seed(seed)
    q, kc, zk, zv = (torch.randn(B, H, L, d, generator=g) for _ in range(4))
    eq = torch.randn(H, k, d, generator=g) * 3
    valid = torch.ones(B, L, dtype=torch.bool)
    valid[1, :4] = False
    return q, eq, kc, zk, zv, valid


@pytest.mark.parametrize("topk", [0, 1, 2, 4])
@pytest.mark.parametrize("decayed", [False, True])
@pytest.mark.parametrize("chunk", [1, 4, 64])
def test_every_path_matches_the_loops(decayed: bool, chunk: int, topk: int) -> None:
    q, eq, kc, zk, zv, valid = _inputs(0)
    decay = torch.tensor([[0.0, 0.05, 0.3, 2.0], [0.1, 0.0, 0.7, 0.01]]) if decayed else None
    want = _loops(q, eq, kc, zk, zv, valid, 8.0, decay, topk).float()
    kw = {"logit_bound": 8.0, "decay": decay, "compress_over": "experts", "route_topk": topk}
    ref = dispatcher_attention_reference(q, eq, kc, zk, zv, valid, **kw)
    fast = dispatcher_attention_chunked(q, eq, kc, zk, zv, valid, chunk=chunk, **kw)
    torch.testing.assert_close(ref, want, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(fast, want, atol=2e-5, rtol=1e-4)
    state, outs = DispatcherState.zeros(2, 2, 4, 3), []
    for t in range(q.shape[2]):
        y, state = dispatcher_step(
            state, q[:, :, t], eq, kc[:, :, t], zk[:, :, t], zv[:, :, t], valid[:, t], **kw
        )
        outs.append(y)
    torch.testing.assert_close(torch.stack(outs, 2), want, atol=2e-5, rtol=1e-4)
    if not decayed and topk in (0, 4):  # each valid event's weights over the experts sum to one
        torch.testing.assert_close(state.den.sum(-1), torch.tensor([[13.0] * 2, [9.0] * 2]))
    if topk == 1:  # an event's weight goes to one expert: the largest share, at least 1 / k
        assert state.den.sum(-1).min() >= 9 / 4 and (state.den < 1e-6).any()


def test_hand_computed() -> None:
    # One head, d = 1, two experts with queries +1 and -1 and bound 8, so the logits of an event
    # with compress key c are (c, -c), its routed weights (sigmoid(2c), sigmoid(-2c)).
    kc = torch.tensor([2.0, -1.0, 0.5]).view(1, 1, 3, 1)
    zk = torch.zeros(1, 1, 3, 1)  # zero keys: the dispatch is uniform over the two experts
    zv = torch.tensor([1.0, 2.0, 4.0]).view(1, 1, 3, 1)
    eq = torch.tensor([[[1.0], [-1.0]]])
    y = dispatcher_attention(torch.ones(1, 1, 3, 1), eq, kc, zk, zv, compress_over="experts")
    r0 = torch.sigmoid(2 * torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64))  # to expert 0
    r1 = 1 - r0
    want = []
    for t in range(3):
        v0 = (r0[: t + 1] * zv[0, 0, : t + 1, 0].double()).sum() / r0[: t + 1].sum()
        v1 = (r1[: t + 1] * zv[0, 0, : t + 1, 0].double()).sum() / r1[: t + 1].sum()
        want.append((v0 + v1) / 2)
    torch.testing.assert_close(y[0, 0, :, 0].double(), torch.stack(want), atol=1e-6, rtol=1e-6)
    # the first position: both experts hold the one event, whatever its routing
    assert y[0, 0, 0, 0].item() == pytest.approx(1.0)


@pytest.mark.parametrize("k", [2, 5, 16])
def test_route_level_is_the_topk_threshold_with_ties(k: int) -> None:
    """The threshold without ``topk`` (what compiled code uses) equals
    ``r.topk(n).values[..., -1:]`` for every n, on values drawn from {0, 1, 2, 3} (many ties, at
    the n-th largest too) and with -inf entries; the mask keeps at least n experts either way."""
    g = torch.Generator().manual_seed(k)
    r = torch.randint(0, 4, (3, 200, k), generator=g).float()
    r[0, :50, : k // 2] = -math.inf
    for n in range(1, k):
        assert torch.equal(route_level(r, n), r.topk(n, -1).values[..., -1:]), n
        assert (route_keep(r, n).sum(-1) >= n).all()
    assert route_keep(r, 0) is None and route_keep(r, k) is None
    by_hand = torch.tensor([[3.0, 1.0, 3.0, 2.0], [1.0, 2.0, 2.0, 2.0]])
    assert route_level(by_hand, 1).tolist() == [[3.0], [2.0]]
    assert route_level(by_hand, 3).tolist() == [[2.0], [2.0]]
    assert route_keep(by_hand, 1).tolist() == [
        [True, False, True, False],
        [False, True, True, True],
    ]


def test_route_keep_is_the_same_when_compiling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Eager (``topk``) and compiling (:func:`route_level`) give the same mask, ties included."""
    r = torch.randint(0, 3, (64, 6), generator=torch.Generator().manual_seed(1)).float()
    eager = [route_keep(r, n) for n in range(1, 6)]
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    assert all(torch.equal(route_keep(r, n), e) for n, e in zip(range(1, 6), eager, strict=True))


@pytest.mark.skipif(
    shutil.which("c++") is None and shutil.which("g++") is None,
    reason="torch.compile on CPU needs a C++ compiler",
)
def test_compiled_routing_matches_eager_without_a_topk_kernel() -> None:
    """Under ``torch.compile`` (inductor, CPU) the routed weights equal eager's, keep the same
    experts, and the generated code has no ``topk`` (the fallback kernel this mask avoids)."""
    from torch._inductor.utils import run_and_get_code

    s = torch.randn(2, 3, 50, 8, generator=torch.Generator().manual_seed(0)) * 4
    fn = partial(compress_weights, bound=16.0, over="experts", topk=2)
    got, code = run_and_get_code(torch.compile(fn, fullgraph=True), s)
    want = fn(s)
    torch.testing.assert_close(got, want)
    assert torch.equal(got > 1e-10, want > 1e-10)
    assert code and not any("topk" in c for c in code)


def test_a_short_interest_keeps_an_expert_of_its_own() -> None:
    """2,000 events aligned with expert 0 and a burst of 5 aligned with expert 1 (logits 4 and 0).
    Normalised over events, expert 1 weighs a burst event e^4 against an ordinary one's e^0, and
    the burst holds 5 e^4 / (5 e^4 + 2,000) = 12% of its summary; routed softly, the ratio of the
    two weights is sigmoid(4) / sigmoid(-4) = e^4 again (the same 12%); routed to the top expert
    only, expert 1 holds the burst alone (100%)."""
    L, burst = 2005, torch.arange(1000, 1005)
    kc = torch.zeros(1, 1, L, 2)
    kc[..., 0] = 1.0
    kc[0, 0, burst] = torch.tensor([0.0, 1.0])
    zv = kc.clone()  # ordinary events carry the value (1, 0), the burst (0, 1)
    eq = torch.tensor([[[4.0, 0.0], [0.0, 4.0]]])
    q = torch.zeros(1, 1, L, 2)
    q[..., 1] = 1.0  # with zk = 100 zv, every position reads expert 1 alone (where it holds events)
    run = partial(dispatcher_attention, q, eq, kc, zv * 100, zv, chunk=64)
    share = 5 * math.exp(4) / (5 * math.exp(4) + 2000)
    assert run(compress_over="events")[0, 0, -1, 1].item() == pytest.approx(share, rel=1e-3)
    assert run(compress_over="experts")[0, 0, -1, 1].item() == pytest.approx(share, rel=1e-3)
    top1 = run(compress_over="experts", route_topk=1)
    assert top1[0, 0, -1, 1].item() == pytest.approx(1.0, abs=1e-4)
    # before the burst no event is routed to expert 1: it reads as the mean of the prefix, (1, 0)
    torch.testing.assert_close(top1[0, 0, 999], torch.tensor([1.0, 0.0]))


@pytest.mark.parametrize("topk", [0, 2])
def test_gradients_match_the_reference(topk: int) -> None:
    q, eq, kc, zk, zv, valid = _inputs(3, L=11)
    decay = torch.tensor([[0.0, 0.05, 0.3, 0.6], [0.1, 0.0, 0.7, 0.01]])
    grads = []
    for fn, extra in (
        (dispatcher_attention_reference, {}),
        (dispatcher_attention_chunked, {"chunk": 3}),
    ):
        leaves = [t.clone().requires_grad_(True) for t in (q, eq, kc, zk, zv, decay)]
        y = fn(
            *leaves[:5], valid, decay=leaves[5], compress_over="experts", route_topk=topk, **extra
        )
        y.backward(torch.randn(y.shape, generator=torch.Generator().manual_seed(4)))
        grads.append([t.grad for t in leaves])
    for name, a, b in zip(("q", "eq", "kc", "zk", "zv", "decay"), *grads, strict=True):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4, msg=name)


def test_compress_weights() -> None:
    s = torch.tensor([[16.0, 0.0, -16.0]])
    torch.testing.assert_close(compress_weights(s, 16.0), torch.exp(s - 16.0))
    torch.testing.assert_close(compress_weights(s, 16.0, "experts"), s.softmax(-1))
    assert compress_weights(s, 16.0, "experts").sum().item() == pytest.approx(1.0)
    r = s.softmax(-1)
    want = torch.tensor([[r[0, 0].item(), r[0, 1].item(), math.exp(-32.0) / 3]])
    torch.testing.assert_close(compress_weights(s, 16.0, "experts", 2), want)


def test_errors_name_the_value() -> None:
    q, eq, kc, zk, zv, valid = _inputs(0)
    with pytest.raises(ValueError, match=r"compress_over must be one of .* Got 'slots' instead"):
        dispatcher_attention(q, eq, kc, zk, zv, valid, compress_over="slots")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"route_topk must be an int in \[0, 4\].* Got 5 instead"):
        dispatcher_attention(q, eq, kc, zk, zv, valid, compress_over="experts", route_topk=5)
    with pytest.raises(ValueError, match=r"route_topk=1 .* needs compress_over='experts'"):
        dispatcher_attention(q, eq, kc, zk, zv, valid, route_topk=1)
    state = DispatcherState.zeros(2, 2, 4, 3)
    with pytest.raises(ValueError, match=r"compress_over must be one of .* Got 'slots' instead"):
        dispatcher_step(state, q[:, :, 0], eq, kc[:, :, 0], zk[:, :, 0], zv[:, :, 0],
                        compress_over="slots")  # type: ignore[arg-type]  # fmt: skip
    with pytest.raises(ValueError, match=r"DispatcherAttentionLayer: compress_over must be one of"):
        DispatcherAttentionLayer(8, 2, 4, compress_over="slots")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"ElasticConfig: compress_over must be one of .* 'slots'"):
        build_model("elastic", num_items=10, compress_over="slots")
    with pytest.raises(ValueError, match=r"ElasticConfig: route_topk must be an int in \[0, 3\]"):
        build_model("elastic", num_items=10, num_experts=3, compress_over="experts", route_topk=4)


def test_layer_fast_reference_and_steps_agree() -> None:
    torch.manual_seed(0)
    kw = {"compress_over": "experts", "route_topk": 2, "decay_half_life": 8}
    fast = DispatcherAttentionLayer(16, 2, 4, chunk=3, **kw)  # type: ignore[arg-type]
    ref = DispatcherAttentionLayer(16, 2, 4, chunk=3, impl="reference", **kw)  # type: ignore[arg-type]
    ref.load_state_dict(fast.state_dict())
    x = torch.randn(2, 10, 16)
    valid = torch.ones(2, 10, dtype=torch.bool)
    valid[0, :3] = False
    torch.testing.assert_close(fast(x, valid), ref(x, valid), atol=2e-5, rtol=1e-4)
    state, outs = fast.init_state(2), []
    for t in range(10):
        y, state = fast.step(x[:, t], state, valid[:, t])
        outs.append(y)
    torch.testing.assert_close(
        torch.stack(outs, 1)[valid], fast(x, valid)[valid], atol=2e-5, rtol=1e-4
    )


def _model(**kw: object):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    return build_model(
        "elastic", num_items=30, max_len=12, dim=16, num_heads=2, num_experts=3, dropout=0.0,
        chunk_size=4, compress_over="experts", **kw,
    ).eval()  # fmt: skip


@pytest.mark.parametrize(("local_window", "topk"), [(0, 0), (3, 0), (0, 1), (2, 2)])
def test_model_causal_fast_equals_reference_and_steps(local_window: int, topk: int) -> None:
    m = _model(decay_half_life=16, local_window=local_window, route_topk=topk)
    ids = torch.tensor([[0, 0, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [0] * 7 + [1, 2, 3, 4, 5]])
    full = m.encode(ids)
    changed = ids.clone()
    changed[0, 6] = 20
    other = m.encode(changed)
    assert torch.equal(other[0, :6], full[0, :6]) and (other[0, 6] - full[0, 6]).abs().amax() > 1e-3
    ref = _model(decay_half_life=16, local_window=local_window, route_topk=topk, impl="reference")
    ref.load_state_dict(m.state_dict())
    torch.testing.assert_close(ref.encode(ids), full, atol=2e-5, rtol=1e-4)
    state, hidden = m.init_state(2), []
    for t in range(ids.shape[1]):
        out = m.step(state, ids[:, t])
        state, _ = out.state, hidden.append(out.hidden)
    torch.testing.assert_close(torch.stack(hidden, 1), full, atol=1e-5, rtol=1e-4)
    # the other normalisation gives another model from the same weights
    events = _model(decay_half_life=16, local_window=local_window, route_topk=topk)
    events.load_state_dict(m.state_dict())
    for block in events.blocks:
        block.lda.compress_over, block.lda.route_topk = "events", 0
    assert (events.encode(ids) - full).abs().amax() > 1e-3


def test_model_round_trip_keeps_the_routing(tmp_path: Path) -> None:
    m = _model(route_topk=2)
    m.save_pretrained(tmp_path)
    back = load_model(tmp_path)
    assert (back.config.compress_over, back.config.route_topk) == ("experts", 2)
    ids = torch.tensor([[0, 0, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]])
    torch.testing.assert_close(back.eval().encode(ids), m.encode(ids))


@pytest.mark.parametrize("rate", [0.3, 10.0])
def test_decayed_top1_routing_has_finite_gradients(rate: float) -> None:
    """One early event routed to expert 1, 299 to expert 0, expert 1 decaying fast: its routed
    weight fades far below float32's normal range while the floor keeps the denominators up."""
    B, H, L, d = 1, 1, 300, 4
    g = torch.Generator().manual_seed(0)
    q, zk, zv = (torch.randn(B, H, L, d, generator=g) for _ in range(3))
    kc = torch.zeros(B, H, L, d)
    kc[..., 0] = 1.0
    kc[:, :, 5, 0] = -1.0
    eq = torch.zeros(H, 2, d)
    eq[0, 0, 0], eq[0, 1, 0] = 4.0, -4.0
    leaves = [
        t.clone().requires_grad_(True) for t in (q, eq, kc, zk, zv, torch.tensor([[0.01, rate]]))
    ]
    y = dispatcher_attention_chunked(
        *leaves[:5], decay=leaves[5], compress_over="experts", route_topk=1, chunk=64
    )
    y.square().sum().backward()
    assert torch.isfinite(y).all()
    for name, t in zip(("q", "eq", "kc", "zk", "zv", "decay"), leaves, strict=True):
        assert torch.isfinite(t.grad).all(), name
