"""KSA attention ops: the mask against hand-checked cases, fast paths against the reference
(hypothesis over lengths, chunk sizes, windows, batch sizes, heads), the FlexAttention block mask
against the dense mask, and the attention sublayer."""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.attention.flex_attention import BlockMask, create_block_mask

from shortlist.ops.ksa import (
    KSAAttentionLayer,
    event_attention_blocked,
    ksa_attention,
    ksa_mask,
    num_chunks,
)
from shortlist.ops.ksa_flex import (
    block_mask_from_tables,
    event_attention_flex,
    flex_kernel_options,
    ksa_mask_mod,
    padded_length,
    summary_layout,
)

SETTINGS = settings(max_examples=40, deadline=None)


def ksa_block_mask(
    L: int, chunk: int, window: int, device: str, block: int, span: int | None = None
) -> BlockMask:
    """The reference block mask: ``create_block_mask`` evaluating the mask pair by pair."""
    _, Sb, G, _ = summary_layout(L, chunk, span, block)
    return create_block_mask(
        ksa_mask_mod(L, chunk, window, span, block), B=None, H=None, Q_LEN=L,
        KV_LEN=L + G * Sb, device=device, BLOCK_SIZE=block,
    )  # fmt: skip


def _inputs(B: int, H: int, L: int, dh: int, chunk: int, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    S = num_chunks(L, chunk)
    return [
        torch.randn(B, H, n, dh, generator=gen, dtype=torch.float64) for n in (L, L, L, S, S, S)
    ]


def test_mask_by_hand() -> None:
    # L = 7, k = 2, W = 1: chunks {0,1} {2,3} {4,5} {6}; summaries 7..10
    m = ksa_mask(7, 2, 1)
    assert m.shape == (11, 11)
    # event 6 (chunk 3): own chunk causally, chunk 2 in full, summaries of chunks 0 and 1
    assert m[6].nonzero().flatten().tolist() == [4, 5, 6, 7, 8]
    # event 3 (chunk 1): events 0..3 (chunk 0 is in the window), no summary
    assert m[3].nonzero().flatten().tolist() == [0, 1, 2, 3]
    # event 4 (chunk 2): itself, chunk 1, summary of chunk 0
    assert m[4].nonzero().flatten().tolist() == [2, 3, 4, 7]
    # summary of chunk 1 (row 8): events 2, 3 and itself; summary of the partial chunk 3: event 6
    assert m[8].nonzero().flatten().tolist() == [2, 3, 8]
    assert m[10].nonzero().flatten().tolist() == [6, 10]
    # no event query sees a later event or a summary of a chunk that is not over before its own
    ev = m[:7]
    assert not torch.triu(ev[:, :7], 1).any()
    # unbounded window: plain causal attention over events, no summaries
    full = ksa_mask(7, 2, None)
    assert torch.equal(full[:7, :7], torch.ones(7, 7, dtype=torch.bool).tril())
    assert not full[:7, 7:].any()


@SETTINGS
@given(
    B=st.integers(1, 3),
    H=st.integers(1, 3),
    L=st.integers(1, 70),
    chunk=st.integers(1, 9),
    window=st.one_of(st.none(), st.integers(0, 6)),
    dh=st.sampled_from([2, 4, 8]),
    block_queries=st.integers(1, 40),
    seed=st.integers(0, 2**16),
)
def test_blocked_and_banded_match_reference(
    B: int, H: int, L: int, chunk: int, window: int | None, dh: int, block_queries: int, seed: int
) -> None:
    t = _inputs(B, H, L, dh, chunk, seed)
    ref = ksa_attention(*t, chunk, window, impl="reference")
    for impl in ("blocked", "banded"):
        fast = ksa_attention(*t, chunk, window, impl=impl)
        torch.testing.assert_close(fast.events, ref.events, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(fast.summaries, ref.summaries, rtol=1e-10, atol=1e-10)
    if window is not None:  # the blocked kernel itself, with many and odd-sized blocks
        q, k, v, _, sk, sv = t
        ev = event_attention_blocked(q, k, v, sk, sv, chunk, window, dh**-0.5, block_queries)
        torch.testing.assert_close(ev, ref.events, rtol=1e-10, atol=1e-10)


@settings(max_examples=25, deadline=None)
@given(
    L=st.integers(1, 60),
    chunk=st.integers(1, 9),
    window=st.integers(0, 5),
    block=st.sampled_from([4, 8, 16]),
)
def test_flex_block_mask_matches_dense_mask(L: int, chunk: int, window: int, block: int) -> None:
    dense = ksa_mask(L, chunk, window)[:L]  # event query rows, (L, L + S)
    mod = ksa_mask_mod(L, chunk, window)
    q_idx = torch.arange(L)[:, None]
    kv_idx = torch.arange(dense.shape[1])[None, :]
    assert torch.equal(mod(0, 0, q_idx, kv_idx), dense)
    # block level: a block is kept iff it holds an allowed pair; a "full" block has no masked pair
    bm = ksa_block_mask(L, chunk, window, "cpu", block)
    kept = bm.to_dense()[0, 0].bool()  # (Q blocks, KV blocks)
    nq, nk = kept.shape
    padded = torch.zeros(nq * block, nk * block, dtype=torch.bool)
    padded[: dense.shape[0], : dense.shape[1]] = dense
    any_allowed = padded.view(nq, block, nk, block).any(3).any(1)
    assert torch.equal(kept, any_allowed)
    full = padded.view(nq, block, nk, block).all(3).all(1)
    if bm.full_kv_num_blocks is not None:  # blocks run without evaluating the mask: all allowed
        for i in range(nq):
            for j in bm.full_kv_indices[0, 0, i, : bm.full_kv_num_blocks[0, 0, i]].tolist():
                assert full[i, j]


@settings(max_examples=12, deadline=None)
@given(
    B=st.integers(1, 2),
    H=st.integers(1, 2),
    L=st.integers(1, 40),
    chunk=st.integers(1, 6),
    window=st.integers(0, 4),
    seed=st.integers(0, 2**16),
    block=st.sampled_from([16, 32, 128]),
)
def test_flex_path_matches_reference_on_cpu(
    B: int, H: int, L: int, chunk: int, window: int, seed: int, block: int
) -> None:
    t = [x.float() for x in _inputs(B, H, L, 8, chunk, seed)]
    ref = ksa_attention(*t, chunk, window, impl="reference")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # eager FlexAttention on CPU warns
        flex = ksa_attention(*t, chunk, window, impl="flex", flex_block=block)
    torch.testing.assert_close(flex.events, ref.events, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(flex.summaries, ref.summaries, rtol=1e-5, atol=1e-5)


def test_summary_layout_by_hand() -> None:
    # L = 100, k = 8: S = 13 summaries, one copy padded to 16 keys; span 20 -> 32: 4 copies
    assert summary_layout(100, 8, 20, 16) == (13, 16, 4, 32)
    assert summary_layout(100, 8, None, 16) == (13, 13, 1, 100)  # one unpadded copy
    assert summary_layout(100, 8, 4096, 16) == (13, 16, 1, 4096)
    # the 16k case: 8 copies of 256 summaries, 2,048 extra keys beside the first copy
    assert summary_layout(16384, 64, 2048, 128) == (256, 256, 8, 2048)


@settings(max_examples=25, deadline=None)
@given(
    L=st.integers(1, 70),
    chunk=st.integers(1, 9),
    window=st.integers(0, 5),
    span=st.integers(1, 40),
)
def test_mask_mod_with_summary_copies_matches_dense_mask(
    L: int, chunk: int, window: int, span: int
) -> None:
    """Query q sees copy q // span of the summaries exactly as the dense mask's summary columns."""
    block = 8
    dense = ksa_mask(L, chunk, window)[:L]  # (L, L + S)
    S, Sb, G, span_q = summary_layout(L, chunk, span, block)
    got = ksa_mask_mod(L, chunk, window, span, block)(
        0, 0, torch.arange(L)[:, None], torch.arange(L + G * Sb)[None, :]
    )
    want = torch.zeros(L, L + G * Sb, dtype=torch.bool)
    want[:, :L] = dense[:, :L]
    for q in range(L):
        g = q // span_q
        want[q, L + g * Sb : L + g * Sb + S] = dense[q, L:]
    assert torch.equal(got, want)


@settings(max_examples=15, deadline=None)
@given(
    L=st.integers(1, 70),
    chunk=st.integers(1, 6),
    window=st.integers(0, 4),
    span=st.sampled_from([16, 32, 48]),
    seed=st.integers(0, 2**16),
)
def test_flex_path_with_summary_copies_matches_reference(
    L: int, chunk: int, window: int, span: int, seed: int
) -> None:
    t = [x.float() for x in _inputs(2, 2, L, 8, chunk, seed)]
    ref = ksa_attention(*t, chunk, window, impl="reference")
    q, k, v, _, sk, sv = t
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # eager FlexAttention on CPU warns
        ev = event_attention_flex(q, k, v, sk, sv, chunk, window, 8**-0.5, 16, flex_span=span)
    torch.testing.assert_close(ev, ref.events, rtol=1e-5, atol=1e-5)


def _block_sets(bm, full: bool) -> list[set[int]]:  # type: ignore[no-untyped-def]
    num = bm.full_kv_num_blocks if full else bm.kv_num_blocks
    idx = bm.full_kv_indices if full else bm.kv_indices
    return [set(idx[0, 0, i, : num[0, 0, i]].tolist()) for i in range(num.shape[-1])]


@settings(max_examples=30, deadline=None)
@given(
    blocks=st.integers(1, 6),
    chunk=st.integers(1, 9),
    window=st.integers(0, 5),
    span=st.one_of(st.none(), st.integers(1, 60)),
    block=st.sampled_from([8, 16]),
)
def test_block_tables_match_create_block_mask(
    blocks: int, chunk: int, window: int, span: int | None, block: int
) -> None:
    """The block mask built from row intervals has the same partial and full blocks as
    create_block_mask's pair-by-pair evaluation, and the same q-side (backward) tables."""
    L = blocks * block
    ref = ksa_block_mask(L, chunk, window, "cpu", block, span)
    got = block_mask_from_tables(L, chunk, window, "cpu", block, span)
    assert got.seq_lengths == ref.seq_lengths
    for full in (False, True):
        assert _block_sets(got, full) == _block_sets(ref, full)
    torch.testing.assert_close(got.q_num_blocks, ref.q_num_blocks, check_dtype=False)
    torch.testing.assert_close(got.full_q_num_blocks, ref.full_q_num_blocks, check_dtype=False)


def test_block_tables_need_a_padded_length() -> None:
    with pytest.raises(ValueError, match=r"multiple of the block \(16\). Got 20: pad it"):
        block_mask_from_tables(20, 4, 2, "cpu", 16)


def _dense_flex(q, k, v, block_mask, scale, kernel_options=None):  # type: ignore[no-untyped-def]
    """What flex_attention computes, densely (CPU FlexAttention has no backward)."""
    allowed = block_mask.mask_mod(
        0, 0, torch.arange(q.shape[2])[:, None], torch.arange(k.shape[2])[None, :]
    )
    scores = (q @ k.transpose(-1, -2) * scale).masked_fill(~allowed, float("-inf"))
    return torch.nan_to_num(scores.softmax(-1)) @ v  # fully masked (padded) rows -> 0


def test_flex_summary_copies_sum_their_gradients(monkeypatch: pytest.MonkeyPatch) -> None:
    # 70 events, span 16: 5 copies of the summaries; their gradients must add up to the reference's
    import shortlist.ops.ksa_flex as kf

    monkeypatch.setattr(kf, "_kernel", lambda device: _dense_flex)
    t = [x.requires_grad_() for x in _inputs(1, 2, 70, 8, 4, 1)]
    q, k, v, _, sk, sv = t
    ref = ksa_attention(*t, 4, 2, impl="reference").events
    grads_ref = torch.autograd.grad(ref.square().sum(), (q, k, v, sk, sv))
    ev = event_attention_flex(q, k, v, sk, sv, 4, 2, 8**-0.5, 16, flex_span=16)
    grads = torch.autograd.grad(ev.square().sum(), (q, k, v, sk, sv))
    for a, b in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    assert grads[3].abs().sum() > 0  # the summaries do get a gradient


def test_padded_length_by_hand() -> None:
    # below 1,024 events the step is the block; then 2^floor(log2 L) / 8
    assert [padded_length(n, 128) for n in (1, 128, 129, 1000)] == [128, 128, 256, 1024]
    assert padded_length(1100, 128) == 1152  # step 128 (1024 / 8)
    assert padded_length(5085, 128) == 5120 and padded_length(9946, 128) == 10240  # step 512, 1024
    assert padded_length(16384, 128) == 16384  # powers of 2 are never padded
    assert padded_length(1100, 16) == 1152 and padded_length(40, 16) == 48
    lengths = {padded_length(n, 128) for n in range(4097, 8193)}
    assert len(lengths) == 8  # at most 8 padded lengths (compiled kernels) per octave


def test_flex_path_pads_long_lengths_exactly() -> None:
    # L = 1,100 is padded to 1,152 (a step larger than the block): the result must not change
    t = [x.float() for x in _inputs(1, 1, 1100, 4, 8, 3)]
    ref = ksa_attention(*t, 8, 2, impl="blocked")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # eager FlexAttention on CPU warns
        flex = ksa_attention(*t, 8, 2, impl="flex", flex_block=16)
    torch.testing.assert_close(flex.events, ref.events, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("impl", ["fast", "banded"])
def test_fast_path_gradients_match_reference(impl: str) -> None:
    t = [x.requires_grad_() for x in _inputs(2, 2, 29, 4, 3, 0)]
    ref = ksa_attention(*t, 3, 2, impl="reference")
    grads_ref = torch.autograd.grad((ref.events.sum() + ref.summaries.square().sum()), t)
    fast = ksa_attention(*t, 3, 2, impl=impl)
    grads_fast = torch.autograd.grad((fast.events.sum() + fast.summaries.square().sum()), t)
    for a, b in zip(grads_fast, grads_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_layer_implementations_agree_and_shapes() -> None:
    torch.manual_seed(0)
    layer = KSAAttentionLayer(16, 2, chunk=4, window=2, impl="reference").double()
    x = torch.randn(3, 23, 16, dtype=torch.float64)
    ref = layer(x)
    assert ref.shape == (3, 23, 16)
    layer.impl = "fast"
    torch.testing.assert_close(layer(x), ref)
    s = torch.randn(3, num_chunks(23, 4), 16, dtype=torch.float64)
    streams = layer.forward_streams(x, s)
    assert streams.events.shape == (3, 23, 16) and streams.summaries.shape == (3, 6, 16)


def test_errors_name_the_bad_value() -> None:
    t = _inputs(1, 1, 10, 4, 3, 0)
    with pytest.raises(ValueError, match=r"'chunk' parameter of KSA must be an int >= 1. Got 0"):
        ksa_attention(*t, 0, 1)
    with pytest.raises(ValueError, match=r"'window' parameter of KSA .* Got -1"):
        ksa_attention(*t, 3, -1)
    with pytest.raises(ValueError, match=r"summary q, k, v of shape \(B, H, S=4, dh\)"):
        ksa_attention(*t[:3], *(x[:, :, :3] for x in t[3:]), 3, 1)
    with pytest.raises(ValueError, match=r"'impl' parameter of ksa_attention must be one of"):
        ksa_attention(*t, 3, 1, impl="triton")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"even head width. Got dim=12, heads=4"):
        KSAAttentionLayer(12, 4, chunk=2, window=1)
    with pytest.raises(ValueError, match=r"'flex_block' parameter .* power of 2 >= 16. Got 48"):
        KSAAttentionLayer(16, 2, chunk=2, window=1, flex_block=48)
    for span in (0, 2.5):
        with pytest.raises(
            ValueError, match=r"'flex_span' parameter of KSAAttentionLayer must be an int >= 1"
        ):
            KSAAttentionLayer(16, 2, chunk=2, window=1, flex_span=span)  # type: ignore[arg-type]


@pytest.mark.parametrize("block", [16, 32, 64, 128, 256])
def test_flex_kernel_tiles_divide_the_block(block: int) -> None:
    """The compiled kernels' tiling rules (static asserts of torch's flex templates) hold."""
    opts = flex_kernel_options(block)
    if block >= 128:
        assert opts is None  # the kernel's own tiles (128 wide) already divide the block
        return
    assert opts is not None
    assert all(block % opts[k] == 0 for k in opts)
    assert opts["bwd_BLOCK_N1"] % opts["bwd_BLOCK_M1"] == 0
    assert opts["bwd_BLOCK_M2"] % opts["bwd_BLOCK_N2"] == 0
    assert min(opts.values()) >= 16


def test_block_mask_is_cached_in_eager_and_rebuilt_when_compiling(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import shortlist.ops.ksa_flex as kf

    a = kf._block_mask(256, 8, 2, "cpu", 16, 64)
    assert kf._block_mask(256, 8, 2, "cpu", 16, 64) is a  # eager: one mask per key
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    b = kf._block_mask(256, 8, 2, "cpu", 16, 64)  # traced: built again (cheaply), same blocks
    assert b is not a
    for full in (False, True):
        assert _block_sets(b, full) == _block_sets(a, full)


BWD = "bwd_BLOCK_M1=32,bwd_BLOCK_N1=64,bwd_BLOCK_M2=64,bwd_BLOCK_N2=32"


def test_flex_tiles_parse_whole_groups() -> None:
    from shortlist.ops.ksa import parse_flex_tiles

    assert parse_flex_tiles("", 128, "t") == {}
    got = parse_flex_tiles(f"{BWD}, bwd_num_warps=4,bwd_num_stages=3", 128, "t")
    assert got == {
        "bwd_BLOCK_M1": 32, "bwd_BLOCK_N1": 64, "bwd_BLOCK_M2": 64, "bwd_BLOCK_N2": 32,
        "bwd_num_warps": 4, "bwd_num_stages": 3,
    }  # fmt: skip
    assert parse_flex_tiles("fwd_BLOCK_M=64,fwd_BLOCK_N=64", 64, "t") == {
        "fwd_BLOCK_M": 64, "fwd_BLOCK_N": 64
    }  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("bwd_BLOCK_Q=32", r"key=integer pairs with keys among"),
        ("fwd_BLOCK_M=sixty", r"Got 'fwd_BLOCK_M=sixty'"),
        ("bwd_BLOCK_M1=32", r"sets \['bwd_BLOCK_M1'\] but not all of the backward tiles"),
        ("fwd_num_warps=4", r"not all of the forward launch"),
        ("fwd_BLOCK_M=256,fwd_BLOCK_N=64", r"fwd_BLOCK_M=256 must be a power of 2 >= 16 that divides the block \(128\)"),
        ("fwd_BLOCK_M=48,fwd_BLOCK_N=64", r"fwd_BLOCK_M=48 must be a power of 2"),
        ("bwd_num_warps=3,bwd_num_stages=2", r"bwd_num_warps=3 must be 1, 2, 4, 8 or 16"),
        ("bwd_num_warps=4,bwd_num_stages=9", r"bwd_num_stages=9 must be in 1..8"),
        ("bwd_BLOCK_M1=64,bwd_BLOCK_N1=32,bwd_BLOCK_M2=64,bwd_BLOCK_N2=32", r"bwd_BLOCK_N1 % bwd_BLOCK_M1 == 0"),
    ],
)  # fmt: skip
def test_flex_tiles_errors_name_the_owner_and_the_rule(spec: str, message: str) -> None:
    from shortlist.ops.ksa import parse_flex_tiles

    with pytest.raises(ValueError, match="The 'flex_tiles' parameter of KSAConfig") as err:
        parse_flex_tiles(spec, 128, "KSAConfig")
    assert err.match(message)


def test_flex_tiles_override_the_kernel_options() -> None:
    from shortlist.ops.ksa import parse_flex_tiles

    tiles = parse_flex_tiles(BWD + ",bwd_num_warps=4,bwd_num_stages=3", 128, "t")
    assert flex_kernel_options(128, tiles) == tiles  # blocks of 128: only the given tiles
    assert flex_kernel_options(128, {}) is None
    small = flex_kernel_options(64, {"bwd_num_warps": 4, "bwd_num_stages": 2})
    assert small is not None and small["bwd_num_warps"] == 4 and small["fwd_BLOCK_M"] == 64


def test_flex_tiles_reach_the_layer_and_the_model_config() -> None:
    """The layer keeps the parsed tiles (they only act in the compiled CUDA kernels: on CPU the
    output is the same), and KSAConfig rejects bad tiles by its own name."""
    from shortlist.models.ksa import KSAConfig

    spec = BWD + ",bwd_num_warps=4,bwd_num_stages=3"
    torch.manual_seed(0)
    a = KSAAttentionLayer(16, 2, chunk=4, window=2, impl="flex", flex_block=64)
    torch.manual_seed(0)
    b = KSAAttentionLayer(16, 2, chunk=4, window=2, impl="flex", flex_block=64, flex_tiles=spec)
    assert b.flex_tiles["bwd_BLOCK_N1"] == 64 and a.flex_tiles == {}
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 40, 16)
    with torch.no_grad():  # eager FlexAttention has no backward on CPU
        torch.testing.assert_close(a(x), b(x))
    assert KSAConfig(num_items=10, flex_tiles=spec).flex_tiles == spec
    with pytest.raises(ValueError, match="The 'flex_tiles' parameter of KSAConfig"):
        KSAConfig(num_items=10, flex_tiles="bwd_BLOCK_M1=32")
