"""Kwai Summary Attention (KSA): chunked sliding attention plus one summary token per chunk.

Implements the attention of the KSA technical report (OneRec Team, arXiv 2604.24432, 2026), as its
official code builds it (``build_summary_sliding_attention_mask``; ../shared/reference/PAPERS.md,
section 2).

Notation:
    B batch, H heads, L event tokens, dh head width, k chunk size (``chunk``),
    W window in chunks (``window``), S = ceil(L / k) chunks = summary tokens.

Layout. Events are cut into chunks of k counted from index 0, the *oldest* event:
``chunk(t) = t // k``. Each chunk has one summary token. Summary queries/keys/values live in their
own contiguous tensors (B, H, S, dh), never interleaved with the events: the key sequence is
``[events | summaries]`` (L + S keys), so a block-sparse kernel skips whole blocks of both
(interleaving summaries every k events skips almost none: ANCHORS.md, section 4).

Mask (what attends to what):
    - event query t in chunk c sees event keys u <= t with chunk(u) >= c - W (its own chunk
      causally, the W previous chunks in full) and the summary keys j < c - W (every chunk older
      than the window). A past chunk is seen either as text or as its summary, never both.
    - the summary query of chunk c sees the events of chunk c (all of them) and itself.
    ``window=None`` means an unbounded window: events attend causally to all events and see no
    summary (KSA's hybrid "full" layers, whose window covers the whole sequence).

Causality and padding. An event query only sees summaries of chunks that end before its own chunk,
so no output at t depends on an event after t. Chunks are aligned to the oldest event, so a chunk's
members never change as events are appended (the KV cache relies on this). Sequences must be
aligned at index 0 (right padding): padding at the tail is never seen by a real event query; the
summary of a partial last chunk sees tail padding, but no real event query ever reads it.

Implementations (``ksa_attention(..., impl=...)``):
    - ``"reference"``: the explicit (L+S, L+S) boolean mask and softmax attention (tests only).
    - ``"blocked"``: per block of query chunks, SDPA over the contiguous event band and the visible
      summary prefix with a small mask; never builds the (L, L) mask. The CPU fast path.
    - ``"banded"``: every query chunk at once against its band of W + 1 event chunks and all
      summaries, masked, one float32 softmax; a few batched matmuls, no loop (for torch.compile).
    - ``"flex"``: FlexAttention with a block mask over ``[events | summaries]`` (``ops/ksa_flex.py``);
      compiled on CUDA. The GPU fast path.
    - ``"fast"``: ``"flex"`` on CUDA, ``"blocked"`` elsewhere.
    Summary queries always use one vectorised pass (:func:`summary_attention`), and unbounded
    windows use causal SDPA over the events (flash kernel on GPU).

Example:
    >>> layer = KSAAttentionLayer(dim=64, heads=2, chunk=8, window=4)
    >>> layer(torch.randn(3, 100, 64)).shape
    torch.Size([3, 100, 64])
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from shortlist.ops.rope import apply_rope, rope_tables

Impl = Literal["reference", "blocked", "banded", "flex", "fast"]
IMPLS: tuple[str, ...] = ("reference", "blocked", "banded", "flex", "fast")
FLEX_SPAN = 2048  # "flex" path: queries per copy of the summaries (ops/ksa_flex.py)


@dataclass
class KSAOutput:
    """Attention outputs: ``events`` (B, H, L, dh) and ``summaries`` (B, H, S, dh)."""

    events: torch.Tensor
    summaries: torch.Tensor


def num_chunks(length: int, chunk: int) -> int:
    """S = ceil(L / k): chunks, and summary tokens, of a sequence of ``length`` events."""
    return -(-length // chunk)


def check_flex_block(block: int, owner: str) -> None:
    """The FlexAttention block size must be a power of 2 >= 16 (ValueError naming ``owner``)."""
    if isinstance(block, bool) or not isinstance(block, int) or block < 16 or block & (block - 1):
        raise ValueError(
            f"The 'flex_block' parameter of {owner} must be a power of 2 >= 16. "
            f"Got {block!r} instead."
        )


def check_flex_span(span: int, owner: str) -> None:
    """Queries per summary copy of the FlexAttention path: an int >= 1 (ValueError naming ``owner``)."""
    if isinstance(span, bool) or not isinstance(span, int) or span < 1:
        raise ValueError(
            f"The 'flex_span' parameter of {owner} must be an int >= 1. Got {span!r} instead."
        )


FLEX_TILE_GROUPS: dict[str, tuple[str, ...]] = {
    "forward tile": ("fwd_BLOCK_M", "fwd_BLOCK_N"),
    "backward tiles": ("bwd_BLOCK_M1", "bwd_BLOCK_N1", "bwd_BLOCK_M2", "bwd_BLOCK_N2"),
    "forward launch": ("fwd_num_warps", "fwd_num_stages"),
    "backward launch": ("bwd_num_warps", "bwd_num_stages"),
}


def parse_flex_tiles(spec: str, block: int, owner: str) -> dict[str, int]:
    """Triton tiles of the FlexAttention kernels, ``"bwd_BLOCK_M1=32,bwd_BLOCK_N1=64,..."`` -> dict.

    ``""`` gives ``{}`` (Inductor's defaults for the GPU). Keys come in the groups of
    :data:`FLEX_TILE_GROUPS`, each given whole or not at all (a tile alone would be paired with a
    default it may not divide). Tiles are powers of 2 >= 16 that divide ``block`` (each sparse block
    must be whole tiles), with BLOCK_N1 % BLOCK_M1 == 0 and BLOCK_M2 % BLOCK_N2 == 0 (the backward
    kernel's static assertions); warps are 1, 2, 4, 8 or 16 and stages 1-8. ValueError naming
    ``owner`` otherwise.
    """
    known = {k for keys in FLEX_TILE_GROUPS.values() for k in keys}
    tiles: dict[str, int] = {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq or key not in known or not value.strip().isdigit():
            raise ValueError(
                f"The 'flex_tiles' parameter of {owner} must be comma-separated key=integer pairs "
                f"with keys among {sorted(known)}. Got {part!r} in {spec!r} instead."
            )
        tiles[key] = int(value)
    for group, keys in FLEX_TILE_GROUPS.items():
        given = [k for k in keys if k in tiles]
        if given and len(given) != len(keys):
            raise ValueError(
                f"The 'flex_tiles' parameter of {owner} sets {given} but not all of the {group} "
                f"{list(keys)}: give the whole group or none of it."
            )
    for key, value in tiles.items():
        if "BLOCK" in key and (value < 16 or value & (value - 1) or block % value):
            raise ValueError(
                f"The 'flex_tiles' parameter of {owner}: {key}={value} must be a power of 2 >= 16 "
                f"that divides the block ({block})."
            )
        if key.endswith("num_warps") and value not in (1, 2, 4, 8, 16):
            raise ValueError(
                f"The 'flex_tiles' parameter of {owner}: {key}={value} must be 1, 2, 4, 8 or 16."
            )
        if key.endswith("num_stages") and not 1 <= value <= 8:
            raise ValueError(
                f"The 'flex_tiles' parameter of {owner}: {key}={value} must be in 1..8."
            )
    if "bwd_BLOCK_M1" in tiles and (
        tiles["bwd_BLOCK_N1"] % tiles["bwd_BLOCK_M1"]
        or tiles["bwd_BLOCK_M2"] % tiles["bwd_BLOCK_N2"]
    ):
        raise ValueError(
            f"The 'flex_tiles' parameter of {owner} needs bwd_BLOCK_N1 % bwd_BLOCK_M1 == 0 and "
            f"bwd_BLOCK_M2 % bwd_BLOCK_N2 == 0 (the backward kernel's assertions). Got {spec!r}."
        )
    return tiles


def _check_params(chunk: int, window: int | None) -> None:
    if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1:
        raise ValueError(
            f"The 'chunk' parameter of KSA must be an int >= 1. Got {chunk!r} instead."
        )
    if window is not None and (
        not isinstance(window, int) or isinstance(window, bool) or window < 0
    ):
        raise ValueError(
            f"The 'window' parameter of KSA must be None or an int >= 0. Got {window!r} instead."
        )


def _check_inputs(
    tensors: tuple[torch.Tensor, ...], chunk: int, window: int | None
) -> tuple[int, int]:
    """Validate (q, k, v, sq, sk, sv) shapes; return (L, S)."""
    _check_params(chunk, window)
    q, k, v, sq, sk, sv = tensors
    if q.dim() != 4 or q.shape != k.shape or q.shape != v.shape:
        raise ValueError(
            "KSA expects event q, k, v of one shape (B, H, L, dh). Got "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)} instead."
        )
    B, H, L, dh = q.shape
    S = num_chunks(L, chunk)
    if L < 1 or any(t.shape != (B, H, S, dh) for t in (sq, sk, sv)):
        raise ValueError(
            f"KSA expects L >= 1 events and summary q, k, v of shape (B, H, S={S}, dh) for L={L}, "
            f"chunk={chunk}. Got {tuple(sq.shape)}, {tuple(sk.shape)}, {tuple(sv.shape)} instead."
        )
    return L, S


def is_unbounded(window: int | None, length: int, chunk: int) -> bool:
    """True when every event query sees all earlier events and no summary (plain causal attention)."""
    return window is None or window >= num_chunks(length, chunk) - 1


# -- reference ---------------------------------------------------------------------------------
def ksa_mask(
    length: int, chunk: int, window: int | None, device: torch.device | str | None = None
) -> torch.Tensor:
    """The explicit KSA mask over ``[events | summaries]``: (L + S, L + S) bool, True = may attend.

    Rows and columns 0..L-1 are events, L..L+S-1 summaries (see the module docstring).
    """
    _check_params(chunk, window)
    S = num_chunks(length, chunk)
    W = S if window is None else window
    t = torch.arange(length, device=device)
    ct = t // chunk  # (L,) chunk of each event
    j = torch.arange(S, device=device)
    ev_ev = (t[None, :] <= t[:, None]) & (ct[None, :] >= ct[:, None] - W)  # (L, L)
    ev_sum = j[None, :] < (ct[:, None] - W)  # (L, S): summaries older than the window
    sum_ev = ct[None, :] == j[:, None]  # (S, L): a summary sees its own chunk
    sum_sum = torch.eye(S, dtype=torch.bool, device=device)  # (S, S): and itself
    return torch.cat((torch.cat((ev_ev, ev_sum), 1), torch.cat((sum_ev, sum_sum), 1)), 0)


def ksa_attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    sq: torch.Tensor,
    sk: torch.Tensor,
    sv: torch.Tensor,
    chunk: int,
    window: int | None,
    scale: float | None = None,
) -> KSAOutput:
    """Plain softmax attention under :func:`ksa_mask`: O((L+S)^2) memory, the ground truth.

    Args:
        q, k, v: (B, H, L, dh) event queries, keys, values (already position-encoded).
        sq, sk, sv: (B, H, S, dh) summary queries, keys, values, S = ceil(L / chunk).
        chunk: k, events per chunk. window: W, previous chunks seen in full (None: unbounded).
        scale: score scale, default 1/sqrt(dh).
    """
    L, _ = _check_inputs((q, k, v, sq, sk, sv), chunk, window)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    mask = ksa_mask(L, chunk, window, q.device)  # (L+S, L+S)
    Q, K, V = torch.cat((q, sq), 2), torch.cat((k, sk), 2), torch.cat((v, sv), 2)
    scores = (Q @ K.transpose(-1, -2)) * scale  # (B, H, L+S, L+S)
    out = scores.masked_fill(~mask, float("-inf")).softmax(-1) @ V  # (B, H, L+S, dh)
    return KSAOutput(events=out[:, :, :L], summaries=out[:, :, L:])


# -- fast paths --------------------------------------------------------------------------------
def summary_attention(
    sq: torch.Tensor,
    sk: torch.Tensor,
    sv: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    chunk: int,
    scale: float,
) -> torch.Tensor:
    """Summary queries, vectorised: summary c attends to the k events of chunk c and to itself.

    Args:
        sq, sk, sv: (B, H, S, dh). k, v: (B, H, L, dh) event keys and values.

    Returns:
        (B, H, S, dh). Cost O(L * dh): the events are viewed as (B, H, S, k, dh).
    """
    B, H, L, dh = k.shape
    S = sq.shape[2]
    pad = S * chunk - L
    kc = F.pad(k, (0, 0, 0, pad)).view(B, H, S, chunk, dh)
    vc = F.pad(v, (0, 0, 0, pad)).view(B, H, S, chunk, dh)
    s_ev = torch.einsum("bhsd,bhskd->bhsk", sq, kc) * scale  # (B, H, S, k)
    if pad:
        real = (torch.arange(S * chunk, device=k.device) < L).view(S, chunk)
        s_ev = s_ev.masked_fill(~real, float("-inf"))
    s_self = (sq * sk).sum(-1, keepdim=True) * scale  # (B, H, S, 1)
    p = torch.cat((s_ev, s_self), -1).softmax(-1)  # (B, H, S, k+1)
    return torch.einsum("bhsk,bhskd->bhsd", p[..., :chunk], vc) + p[..., chunk:] * sv


def event_attention_blocked(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    sk: torch.Tensor,
    sv: torch.Tensor,
    chunk: int,
    window: int,
    scale: float,
    block_queries: int = 256,
) -> torch.Tensor:
    """Event queries, one SDPA call per block of query chunks (the CPU fast path).

    A block of G = max(1, block_queries // k) query chunks [c0, c1) needs only the contiguous
    event band [(c0 - W) * k, c1 * k) and the summary prefix [0, c1 - 1 - W); a (G*k, band +
    prefix) mask selects the exact KSA pattern inside. Memory O(G*k * (W*k + S)), never (L, L).

    Args:
        q, k, v: (B, H, L, dh). sk, sv: (B, H, S, dh). window: W >= 0 (bounded).

    Returns:
        (B, H, L, dh).
    """
    L = q.shape[2]
    S = num_chunks(L, chunk)
    G = max(1, block_queries // chunk)
    dev = q.device
    outs = []
    for c0 in range(0, S, G):
        c1 = min(c0 + G, S)
        q0, q1 = c0 * chunk, min(c1 * chunk, L)
        e0 = max(0, (c0 - window) * chunk)
        s1 = max(0, c1 - 1 - window)  # summaries visible to the block's last chunk
        tq = torch.arange(q0, q1, device=dev)
        te = torch.arange(e0, q1, device=dev)
        cq = (tq // chunk)[:, None]  # (Q, 1)
        mask = (te[None, :] <= tq[:, None]) & ((te // chunk)[None, :] >= cq - window)
        keys, values = k[:, :, e0:q1], v[:, :, e0:q1]
        if s1:
            mask = torch.cat((mask, torch.arange(s1, device=dev)[None, :] < cq - window), 1)
            keys = torch.cat((keys, sk[:, :, :s1]), 2)
            values = torch.cat((values, sv[:, :, :s1]), 2)
        outs.append(
            F.scaled_dot_product_attention(
                q[:, :, q0:q1], keys, values, attn_mask=mask, scale=scale
            )
        )
    return torch.cat(outs, 2)


@functools.lru_cache(maxsize=32)
def _banded_masks(
    S: int, chunk: int, window: int, device: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """The masks of :func:`event_attention_banded`, built once per (S, k, W, device):
    band (S, k, (W + 1) k), event u of the band visible to query t (u <= t, u >= 0); summaries
    (S, 1, S), summary j visible to chunk c (j < c - W)."""
    front, band = window * chunk, (window + 1) * chunk
    t = torch.arange(S * chunk, device=device).view(S, chunk, 1)  # query positions
    u = (torch.arange(S, device=device) * chunk - front).view(S, 1, 1)
    u = u + torch.arange(band, device=device)  # event positions of each chunk's band
    band_ok = (u <= t) & (u >= 0)
    c = torch.arange(S, device=device)
    return band_ok, (c[None, :] < c[:, None] - window)[:, None]


def event_attention_banded(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    sk: torch.Tensor,
    sv: torch.Tensor,
    chunk: int,
    window: int,
    scale: float,
) -> torch.Tensor:
    """Event queries, every chunk at once: a band of W + 1 chunks of events plus all summaries.

    Query chunk c (k queries) scores the (W + 1) k events of chunks c - W .. c (a strided view of
    the keys, front-padded by W k) and the S summaries; masks keep the KSA pattern (events u <= t,
    u >= 0; summaries j < c - W), and one softmax runs over both, in float32 (or wider). No Python
    loop and no data-dependent shapes: a few batched matmuls for ``torch.compile`` to fuse (a GPU
    candidate; on 2 CPU cores it is slower than :func:`event_attention_blocked`). Work and memory
    O(L ((W + 1) k + S)): the summary scores grow as L^2 / k, KSA's own cost per query, with no
    skipping of masked entries.

    Args:
        q, k, v: (B, H, L, dh). sk, sv: (B, H, S, dh). window: W >= 0 (bounded).

    Returns:
        (B, H, L, dh), in q's dtype.
    """
    B, H, L, dh = q.shape
    S = num_chunks(L, chunk)
    pad, front, band = S * chunk - L, window * chunk, (window + 1) * chunk
    qc = F.pad(q, (0, 0, 0, pad)).view(B, H, S, chunk, dh)
    # (B, H, S, band, dh): chunk c's band starts at event (c - W) k, i.e. at c k of the padded keys
    kb = F.pad(k, (0, 0, front, pad)).unfold(2, band, chunk).transpose(-1, -2)
    vb = F.pad(v, (0, 0, front, pad)).unfold(2, band, chunk).transpose(-1, -2)
    band_ok, sum_ok = _banded_masks(S, chunk, window, str(q.device))
    acc = torch.promote_types(q.dtype, torch.float32)  # softmax in float32 at least
    s_band = torch.einsum("bhsqd,bhsud->bhsqu", qc, kb).to(acc) * scale  # (B, H, S, k, band)
    s_sum = torch.einsum("bhsqd,bhjd->bhsqj", qc, sk).to(acc) * scale  # (B, H, S, k, S)
    scores = torch.cat(
        (
            s_band.masked_fill(~band_ok, float("-inf")),
            s_sum.masked_fill(~sum_ok, float("-inf")),
        ),
        -1,
    )
    p = scores.softmax(-1).to(v.dtype)
    out = torch.einsum("bhsqu,bhsud->bhsqd", p[..., :band], vb)
    out = out + torch.einsum("bhsqj,bhjd->bhsqd", p[..., band:], sv)
    return out.reshape(B, H, S * chunk, dh)[:, :, :L]


def ksa_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    sq: torch.Tensor,
    sk: torch.Tensor,
    sv: torch.Tensor,
    chunk: int,
    window: int | None,
    impl: Impl = "fast",
    scale: float | None = None,
    flex_block: int = 128,
    flex_span: int = FLEX_SPAN,
    flex_tiles: dict[str, int] | None = None,
) -> KSAOutput:
    """KSA attention over events and their summaries: the one dispatch point of the implementations.

    Args:
        q, k, v: (B, H, L, dh) event queries, keys, values (already position-encoded).
        sq, sk, sv: (B, H, S, dh) summary queries, keys, values, S = ceil(L / chunk).
        chunk: k, events per chunk. window: W previous chunks seen in full, None = unbounded.
        impl: ``"reference" | "blocked" | "banded" | "flex" | "fast"`` (module docstring).
        scale: score scale, default 1/sqrt(dh).
        flex_block: block size of the ``"flex"`` path's block mask (see ``ops/ksa_flex.py``).
        flex_span: queries per copy of the summaries on the ``"flex"`` path (``ops/ksa_flex.py``:
            shorter spans shorten the backward's serial chain over a summary block).
        flex_tiles: Triton tiles of the compiled ``"flex"`` kernels (:func:`parse_flex_tiles`);
            None or ``{}``: Inductor's defaults.

    Returns:
        :class:`KSAOutput` with events (B, H, L, dh) and summaries (B, H, S, dh).
    """
    if impl not in IMPLS:
        raise ValueError(
            f"The 'impl' parameter of ksa_attention must be one of {list(IMPLS)}. Got {impl!r} instead."
        )
    if impl == "reference":
        return ksa_attention_reference(q, k, v, sq, sk, sv, chunk, window, scale)
    L, _ = _check_inputs((q, k, v, sq, sk, sv), chunk, window)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    summaries = summary_attention(sq, sk, sv, k, v, chunk, scale)
    if is_unbounded(window, L, chunk):
        events = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
    else:
        assert window is not None
        if impl == "fast":
            impl = "flex" if q.is_cuda else "blocked"
        if impl == "flex":
            from shortlist.ops.ksa_flex import event_attention_flex

            events = event_attention_flex(
                q, k, v, sk, sv, chunk, window, scale, flex_block, flex_span, flex_tiles
            )
        elif impl == "banded":
            events = event_attention_banded(q, k, v, sk, sv, chunk, window, scale)
        else:
            events = event_attention_blocked(q, k, v, sk, sv, chunk, window, scale)
    return KSAOutput(events=events, summaries=summaries)


# -- one attention sublayer --------------------------------------------------------------------
@dataclass
class KSAStreams:
    """Outputs of :meth:`KSAAttentionLayer.forward_streams`: events (B, L, D), summaries (B, S, D)."""

    events: torch.Tensor
    summaries: torch.Tensor


class KSAAttentionLayer(nn.Module):
    """One KSA attention sublayer: Q/K/V projections, RoPE, KSA, output projection.

    Events and summaries have their own Q/K/V projections (the official ``use_independent_qkv``:
    ``q_proj_summary``, ``k_proj_summary``, ``v_proj_summary``) and share the output projection.
    RoPE positions: event t has position t (counted from the oldest event); the summary of chunk c
    takes the position of the last event of its chunk, c*k + k - 1 (``last_chunk_slice_right``).

    Args:
        dim: D, model width. heads: H (D % H == 0, D/H even for RoPE).
        chunk: k. window: W chunks seen in full, None = full attention (a hybrid "full" layer).
        impl: attention implementation, see :func:`ksa_attention`.
        independent_summary_qkv: separate Q/K/V projections for summary tokens (else shared).
        rope_base: RoPE frequency base.
        flex_block: block size of the ``"flex"`` path (GPU), see :func:`ksa_attention`.
        flex_span: queries per summary copy of the ``"flex"`` path, see :func:`ksa_attention`.
        flex_tiles: Triton tiles of the ``"flex"`` kernels, ``"key=value,..."``
            (:func:`parse_flex_tiles`); ``""``: Inductor's defaults.

    Example:
        >>> layer = KSAAttentionLayer(64, 2, chunk=8, window=4, impl="blocked")
        >>> layer(torch.randn(2, 50, 64)).shape
        torch.Size([2, 50, 64])
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        chunk: int,
        window: int | None,
        impl: Impl = "fast",
        independent_summary_qkv: bool = True,
        rope_base: float = 10_000.0,
        flex_block: int = 128,
        flex_span: int = FLEX_SPAN,
        flex_tiles: str = "",
    ) -> None:
        super().__init__()
        _check_params(chunk, window)
        check_flex_block(flex_block, "KSAAttentionLayer")
        check_flex_span(flex_span, "KSAAttentionLayer")
        self.flex_block, self.flex_span = flex_block, flex_span
        self.flex_tiles = parse_flex_tiles(flex_tiles, flex_block, "KSAAttentionLayer")
        if dim % heads or (dim // heads) % 2:
            raise ValueError(
                f"KSAAttentionLayer needs dim divisible by heads with an even head width. "
                f"Got dim={dim}, heads={heads} instead."
            )
        if impl not in IMPLS:
            raise ValueError(
                f"The 'impl' parameter of KSAAttentionLayer must be one of {list(IMPLS)}. Got {impl!r} instead."
            )
        self.dim, self.heads, self.chunk, self.window, self.impl = dim, heads, chunk, window, impl
        self.rope_base = rope_base
        self.qkv = nn.Linear(dim, 3 * dim)
        self.qkv_summary = nn.Linear(dim, 3 * dim) if independent_summary_qkv else None
        self.proj = nn.Linear(dim, dim)

    def _project(
        self, linear: nn.Linear, x: torch.Tensor, positions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        B, T, D = x.shape
        dh = D // self.heads
        qkv = linear(x).view(B, T, 3, self.heads, dh)
        # RoPE before caching, as in KSA: queries and keys in one pass, one angle table
        cos, sin = rope_tables(positions, dh // 2, self.rope_base, qkv.dtype)  # (T, dh/2)
        qk = apply_rope(qkv[:, :, :2], cos[:, None, None], sin[:, None, None])  # (B, T, 2, H, dh)
        q, k = qk.permute(2, 0, 3, 1, 4)  # 2 x (B, H, T, dh)
        return q, k, qkv[:, :, 2].transpose(1, 2)

    def project_events(
        self, x: torch.Tensor, positions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, T, D) event states at ``positions`` (T,) -> q, k, v, each (B, H, T, dh)."""
        return self._project(self.qkv, x, positions)

    def project_summaries(
        self, s: torch.Tensor, positions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, T, D) summary states at ``positions`` (T,) -> q, k, v, each (B, H, T, dh)."""
        return self._project(self.qkv_summary or self.qkv, s, positions)

    def output(self, a: torch.Tensor) -> torch.Tensor:
        """(B, H, T, dh) attention output -> (B, T, D) through the output projection."""
        B, H, T, dh = a.shape
        return self.proj(a.transpose(1, 2).reshape(B, T, H * dh))

    def summary_positions(self, num_summaries: int, device: torch.device) -> torch.Tensor:
        """(S,) positions of the summary tokens: the last event of each chunk."""
        return torch.arange(num_summaries, device=device) * self.chunk + self.chunk - 1

    def attention_inputs(self, x: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Events (B, L, D) and summaries (B, S, D), S = ceil(L / k) -> what :meth:`attend` takes:
        q, k, v (B, H, L, dh) of the events and sq, sk, sv (B, H, S, dh) of the summaries, RoPE'd."""
        L, S = x.shape[1], s.shape[1]
        if num_chunks(L, self.chunk) != S:
            raise ValueError(
                f"KSAAttentionLayer expects ceil(L / chunk) = {num_chunks(L, self.chunk)} summary "
                f"tokens for L={L}, chunk={self.chunk}. Got {S} instead."
            )
        return (
            *self.project_events(x, torch.arange(L, device=x.device)),
            *self.project_summaries(s, self.summary_positions(S, x.device)),
        )

    def attend(self, *qkv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The attention alone on :meth:`attention_inputs`' six tensors, with this layer's chunk,
        window and path -> events (B, H, L, dh), summaries (B, H, S, dh), before the output
        projection."""
        out = ksa_attention(
            *qkv, self.chunk, self.window, impl=self.impl,
            flex_block=self.flex_block, flex_span=self.flex_span, flex_tiles=self.flex_tiles,
        )  # fmt: skip
        return out.events, out.summaries

    def forward_streams(self, x: torch.Tensor, s: torch.Tensor) -> KSAStreams:
        """Events (B, L, D) and summaries (B, S, D), S = ceil(L / k) -> :class:`KSAStreams`."""
        events, summaries = self.attend(*self.attention_inputs(x, s))
        return KSAStreams(events=self.output(events), summaries=self.output(summaries))

    def forward(self, x: torch.Tensor, summaries: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L, D) events -> (B, L, D). ``summaries`` (B, S, D) default to zeros (the cost is the
        same; a model feeds its learned summary stream through :meth:`forward_streams`)."""
        if summaries is None:
            S = num_chunks(x.shape[1], self.chunk)
            summaries = x.new_zeros(x.shape[0], S, x.shape[2])
        return self.forward_streams(x, summaries).events
