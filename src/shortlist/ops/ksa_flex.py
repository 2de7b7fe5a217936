"""KSA event attention with FlexAttention: one block-sparse kernel over ``[events | summaries]``.

The GPU fast path of ``ops/ksa.py`` (notation and mask there). The key sequence is the event keys
followed by the contiguous summary keys. With blocks of 128, a block of event queries touches
about (W*k + 128) / 128 + 1 event blocks and ceil((c - W) / 128) summary blocks, most of them full
(no mask evaluated inside), so almost all of the (L, L + S) grid is skipped; an interleaved layout
would leave a summary key in every block (ANCHORS.md, section 4).

Summary copies. Every summary is seen by every later query, so in the backward pass the program
that accumulates a summary block's dK/dV walks over all L / 128 query blocks one after another,
while an event block's walks over about W*k / 128 + 2: at L = 16k that one serial chain made the
backward 5x the forward (``benchmarks/gpu/profile.sh``, 2026-11-29). So the summaries are
laid out G = ceil(L / span) times, ``[events | copy 0 | ... | copy G-1]`` (each copy padded to whole
blocks), and the queries of span g (positions g*span .. g*span + span - 1) see copy g only. The
forward does the same work (a query block still meets one copy's few blocks), each summary
program's chain shrinks to span / 128 query blocks, and autograd sums the copies' gradients back
into the summaries. G*S summary keys in all, about L^2 / (k * span): 2,048 instead of 256 at
L = 16k, k = 64, span = 2,048 (L + G*S keys against L + S).

Block masks are built from each query's two allowed key intervals (:func:`block_mask_from_tables`),
not by evaluating the mask pair by pair: cheap enough to trace into a compiled graph, where dynamo
would inline a cache away (and a cache kept out of the graph costs a graph break); eager calls
cache them per (L, k, W, span, device). On CUDA the kernel is compiled once per process
(``torch.compile(flex_attention)``); elsewhere the eager FlexAttention runs (it materialises the
scores: tests only).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import BlockMask, flex_attention

from shortlist.ops.ksa import FLEX_SPAN, num_chunks
from shortlist.ops.shapes import round_up_per_octave

BLOCK_SIZE = 128
_compiled: Callable[..., torch.Tensor] | None = None


def summary_layout(
    length: int, chunk: int, span: int | None, block_size: int
) -> tuple[int, int, int, int]:
    """(S, Sb, G, span): summaries, the width of one copy, copies, queries per copy.

    ``span=None``: one unpadded copy (``[events | summaries]``, the layout of ``ops/ksa.ksa_mask``).
    Otherwise ``span`` is rounded up to whole blocks, each copy is padded to whole blocks and
    G = ceil(L / span).
    """
    S = num_chunks(length, chunk)
    if span is None:
        return S, S, 1, max(length, 1)
    span = -(-max(span, 1) // block_size) * block_size
    Sb = -(-max(S, 1) // block_size) * block_size
    return S, Sb, max(1, -(-length // span)), span


def ksa_mask_mod(
    length: int, chunk: int, window: int, span: int | None = None, block_size: int = BLOCK_SIZE
) -> Callable[..., torch.Tensor]:
    """FlexAttention ``mask_mod(b, h, q_idx, kv_idx)`` of event queries over ``[events | copies]``.

    Event key u (kv_idx < L): u <= q and chunk(u) >= chunk(q) - W. Summary key j of copy g
    (kv_idx = L + g*Sb + j, :func:`summary_layout`): g == q // span, j < S and j < chunk(q) - W.
    """
    S, Sb, G, span_q = summary_layout(length, chunk, span, block_size)

    def mask_mod(
        b: torch.Tensor, h: torch.Tensor, q_idx: torch.Tensor, kv_idx: torch.Tensor
    ) -> torch.Tensor:
        cq = q_idx // chunk
        event = (kv_idx < length) & (kv_idx <= q_idx) & (kv_idx // chunk >= cq - window)
        s = kv_idx - length
        if G == 1:
            j, same_copy = s, s >= 0
        else:
            g = s // Sb
            j, same_copy = s - g * Sb, (s >= 0) & (g == q_idx // span_q)
        summary = same_copy & (j < S) & (j < cq - window)
        return event | summary

    return mask_mod


def _block_tables(
    length: int, chunk: int, window: int, span: int | None, block_size: int, device: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(partial, full), each (L / block, KV_LEN / block) bool: blocks with some / only allowed pairs.

    Built from the mask's row structure instead of evaluating it pair by pair. Query q's allowed
    keys are two intervals: the events [lo(q), q + 1), lo(q) = max(0, (c - W) k) with c = q // k,
    and its copy's first m(q) = min(S, max(0, c - W)) summaries [base, base + m(q)), base =
    L + (q // span) Sb. Within a query block of rows q0..q1 both ends grow with q and consecutive
    event intervals touch (lo(q + 1) <= q + 1), and the copy is the same for every row (the span is
    whole blocks): so the union of the rows' intervals is [lo(q0), q1 + 1) and [base, base + m(q1)),
    their intersection [lo(q1), q0 + 1) and [base, base + m(q0)). A key block holds an allowed pair
    iff it meets a union, and only allowed pairs iff it lies inside an intersection (a block lies
    wholly among the events or wholly among the summaries: L is whole blocks). O(L/block * KV/block)
    comparisons: cheap enough to trace into a compiled graph, where a cache cannot be used.
    """
    S, Sb, G, span_q = summary_layout(length, chunk, span, block_size)
    n_q, n_kv = length // block_size, -(-(length + G * Sb) // block_size)
    q0 = torch.arange(n_q, device=device) * block_size  # first and last row of each query block
    q1 = q0 + block_size - 1

    def lo(q: torch.Tensor) -> torch.Tensor:
        return ((q // chunk - window) * chunk).clamp(min=0)

    def m(q: torch.Tensor) -> torch.Tensor:
        return (q // chunk - window).clamp(min=0, max=S)

    base = length + (q0 // span_q) * Sb
    b_lo = torch.arange(n_kv, device=device)[None, :] * block_size  # [b_lo, b_hi) per key block
    b_hi = b_lo + block_size

    def meets(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # (n_q, n_kv), [a, b) per row
        return (a[:, None] < b_hi) & (b[:, None] > b_lo) & (b > a)[:, None]

    def inside(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a[:, None] <= b_lo) & (b[:, None] >= b_hi)

    any_ = meets(lo(q0), q1 + 1) | meets(base, base + m(q1))
    all_ = inside(lo(q1), q0 + 1) | inside(base, base + m(q0))
    return any_ & ~all_, all_


def _ordered(table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(n_q, n_kv) bool -> (1, 1, n_q) counts and (1, 1, n_q, n_kv) indices, kept blocks first."""
    counts = table.sum(-1, dtype=torch.int32)
    order = torch.argsort(table.to(torch.int8), dim=-1, descending=True, stable=True)
    return counts[None, None], order.to(torch.int32)[None, None]


def block_mask_from_tables(
    length: int,
    chunk: int,
    window: int,
    device: str,
    block_size: int = BLOCK_SIZE,
    span: int | None = None,
) -> BlockMask:
    """The :class:`BlockMask` of event queries (L) over ``[events | G summary copies]`` keys, from
    :func:`_block_tables`: the blocks ``create_block_mask`` finds by evaluating
    :func:`ksa_mask_mod` pair by pair (tested), without that (L, L + G*S) evaluation. ``length``
    must be a multiple of ``block_size`` (:func:`padded_length`)."""
    if length % block_size:
        raise ValueError(
            f"block_mask_from_tables needs a length that is a multiple of the block "
            f"({block_size}). Got {length}: pad it with padded_length first."
        )
    _, Sb, G, _ = summary_layout(length, chunk, span, block_size)
    partial, full = _block_tables(length, chunk, window, span, block_size, device)
    kv_num, kv_idx = _ordered(partial)
    full_num, full_idx = _ordered(full)
    return BlockMask.from_kv_blocks(
        kv_num, kv_idx, full_num, full_idx, BLOCK_SIZE=block_size,
        mask_mod=ksa_mask_mod(length, chunk, window, span, block_size),
        seq_lengths=(length, length + G * Sb),
    )  # fmt: skip


_cached_tables_mask = lru_cache(maxsize=16)(block_mask_from_tables)


def _block_mask(
    length: int, chunk: int, window: int, device: str, block_size: int, span: int
) -> BlockMask:
    """Cached in eager mode; traced (cheaply) when the caller is being compiled, where a cache
    lookup would be inlined away or cost a graph break."""
    if torch.compiler.is_compiling():
        return block_mask_from_tables(length, chunk, window, device, block_size, span)
    return _cached_tables_mask(length, chunk, window, device, block_size, span)


def flex_kernel_options(
    block_size: int, tiles: dict[str, int] | None = None
) -> dict[str, int] | None:
    """Triton tile sizes for a block mask of ``block_size`` (None: the kernel's defaults, for >= 128),
    updated with ``tiles`` (``ops/ksa.parse_flex_tiles``: validated, whole groups).

    The compiled kernels need each sparse block to be a whole number of tiles (forward: BLOCK_M and
    BLOCK_N divide the block; backward: BLOCK_M1, BLOCK_N1, BLOCK_M2, BLOCK_N2 divide it, with
    BLOCK_N1 % BLOCK_M1 == 0 and BLOCK_M2 % BLOCK_N2 == 0), and their default tiles on Hopper are
    128 wide: blocks of 64 failed to lower with "Q and KV block size must be divisible by BLOCK_M and
    BLOCK_N" (H200, 2026-11-29). Smaller blocks get tiles of the block (forward) and half / whole
    blocks (backward, as flash attention's backward pairs them). With these tiles the H200's torch
    2.11 still fails, in Inductor's kernel choice ("No choices to select", like
    pytorch/pytorch#176025): on that GPU keep blocks of 128 (docs/long_sequences.md).
    """
    options: dict[str, int] = {}
    if block_size < 128:
        half = max(block_size // 2, 16)
        options = {
            "fwd_BLOCK_M": block_size,
            "fwd_BLOCK_N": block_size,
            "bwd_BLOCK_M1": half,
            "bwd_BLOCK_N1": block_size,
            "bwd_BLOCK_M2": block_size,
            "bwd_BLOCK_N2": half,
        }
    options.update(tiles or {})
    return options or None


def padded_length(length: int, block_size: int) -> int:
    """The length the flex path pads L to: a multiple of max(block_size, 2^floor(log2 L) / 8).

    FlexAttention compiles one kernel per (batch, padded length), tens of seconds each at 10^4
    events. Rounding to a step that grows with L keeps at most 8 padded lengths per octave (about
    70 from 128 to 64k events, under dynamo's raised cache limit) for at most 12.5% padding; below
    1,024 events the step is the block itself. Powers of 2 from the block up are never padded.
    """
    return round_up_per_octave(length, block_size, 8)


def _kernel(device: torch.device) -> Callable[..., torch.Tensor]:
    global _compiled
    if device.type != "cuda":
        return flex_attention
    if _compiled is None:
        # one kernel per (B, padded L): training with dynamic padding meets up to ~8 padded lengths
        # per octave (padded_length; x a last, smaller batch). Past dynamo's default of 8 compiled
        # shapes it would fall back to eager FlexAttention, which materialises the (L, L + S)
        # scores (tens of GiB at L = 2,048, B = 1,024): raise the limits instead.
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 256)
        torch._dynamo.config.accumulated_cache_size_limit = max(
            torch._dynamo.config.accumulated_cache_size_limit, 4096
        )
        _compiled = torch.compile(flex_attention, dynamic=False)
    return _compiled


def event_attention_flex(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    sk: torch.Tensor,
    sv: torch.Tensor,
    chunk: int,
    window: int,
    scale: float,
    block_size: int = BLOCK_SIZE,
    flex_span: int = FLEX_SPAN,
    tiles: dict[str, int] | None = None,
) -> torch.Tensor:
    """Event queries (B, H, L, dh) over events (B, H, L, dh) and summaries (B, H, S, dh) -> (B, H, L, dh).

    ``block_size``: the block mask's (and kernel's) block; with k = 64, blocks of 64 align with the
    chunks (fewer partly masked blocks, about a quarter less work at W = 4) but use smaller tiles.
    ``flex_span``: queries per summary copy (module docstring); rounded up to whole blocks.
    ``tiles``: Triton tiles of the compiled kernels (:func:`flex_kernel_options`); unused off CUDA.

    L is padded up to :func:`padded_length` (zeros, sliced off at the end), so batches of nearby
    lengths share one compiled kernel and one block mask. The padding is exact: padded
    events come after every real query (causally invisible) and padded summaries belong to chunks
    past the last real one (never older than a real query's window).
    """
    L = q.shape[2]
    Lp = padded_length(L, block_size)
    _, Sb, G, _ = summary_layout(Lp, chunk, flex_span, block_size)
    if Lp > L:  # (F.pad copies even when there is nothing to pad: skip it then)
        pad_l = (0, 0, 0, Lp - L)
        q, k, v = F.pad(q, pad_l), F.pad(k, pad_l), F.pad(v, pad_l)
    if Sb > sk.shape[2]:
        pad_s = (0, 0, 0, Sb - sk.shape[2])
        sk, sv = F.pad(sk, pad_s), F.pad(sv, pad_s)
    block_mask = _block_mask(Lp, chunk, window, str(q.device), block_size, flex_span)
    # (B, H, Lp + G*Sb, dh): the events, then G copies of the summaries (their gradients add up)
    keys = torch.cat((k, sk.repeat(1, 1, G, 1)), 2)
    values = torch.cat((v, sv.repeat(1, 1, G, 1)), 2)
    options = flex_kernel_options(block_size, tiles) if q.device.type == "cuda" else None
    out = _kernel(q.device)(
        q, keys, values, block_mask=block_mask, scale=scale, kernel_options=options
    )
    return out[:, :, :L]
