"""Causal Linear Dispatcher Attention (LDA), the sequence mixer of ELASTIC.

ELASTIC (Deng et al., arXiv 2408.09380, withdrawn; ../shared/reference/PAPERS.md, section 1) names
"interest experts" and a "Linear Dispatcher Attention" that compresses a long behaviour sequence
through a fixed number of expert tokens in linear time. Only that much is verified (abstract). The
two cross-attentions below (compress, then dispatch) follow the reconstruction in PAPERS.md; the
causal form, the bounded compress logits and the chunked algorithm are this project's design
(docs/long_sequences.md, "ELASTIC").

Notation:
    B batch, H heads, L positions, d head width, k interest experts, m extra per-position tokens
    (retrieved interest-memory tokens, optional), C chunk length, n = ceil(L / C) chunks,
    T ``logit_bound``.

Compress (causal, per prefix). Expert e has a query ``eq_e``; event j has a compress key ``kc_j``
and two value streams ``zk_j`` (dispatch keys) and ``zv_j`` (dispatch values). With the logit
``s_ej = clamp(eq_e . kc_j, -T, T)``, expert e's summary at position t is the softmax-weighted mean
over the valid events j <= t::

    a_tej = exp(s_ej) / sum_{i <= t, valid} exp(s_ei)
    Kz_t[e] = sum_{j <= t} a_tej zk_j ,   Vz_t[e] = sum_{j <= t} a_tej zv_j

(The reconstruction's Z = softmax(E Wq (X Wk)^T) X Wv followed by key/value projections of Z is
the same thing: a convex combination commutes with affine maps, so we project the events first and
never build Z.)

Dispatch (per position). Position t reads its own causal expert states (and its m extra tokens,
and with a local window W > 0 the valid events j in (t - W, t] exactly: its W most recent events
under left padding, the models' layout; an invalid position inside a row would take a slot)::

    p_t = softmax( [q_t . Kz_t[e]]_e  ++  [q_t . xk_t[i]]_i  ++  [q_t . zk_j]_j )
    y_t = sum_e p_te Vz_t[e] + sum_i p_ti xv_t[i] + sum_j p_tj zv_j

Routing over experts (optional, ``compress_over="experts"``, this project's addition). The compress
above normalises each expert's weights over the prefix's events, so a short interest of a few
events among 10^4 reaches an expert's summary only if that expert's logits single it out by a wide
margin (ln(10^4 / 5) ~ 7.6 for 5 events to hold half of it). With ``compress_over="experts"`` each
event j splits a unit weight over the k experts, ``r_je = softmax_e(s_je)``, and expert e's summary
is the mean of the events by the weight they route to it::

    Kz_t[e] = sum_{j <= t} r_je zk_j / sum_{j <= t} r_je      (Vz likewise)

the behaviour-to-interest routing of multi-interest retrievers (MIND, Li et al. 2019; ComiRec, Cen
et al. 2020: the routing coefficients are a softmax over the interests per behaviour): the experts
become soft clusters of the history. Soft routing alone only reweights each event by
``1 / sum_e exp(s_je)`` against the softmax over events, so its leak from many events is the same
kind; with ``route_topk`` r > 0 each event keeps its r largest ``r_je`` (not renormalised, so the
routing logits keep a gradient, as in Switch-style gating) and gives the other experts only the
floor ``e^{-2T} / k``, the least weight a soft route can give. Then an expert holds the events
routed to it, and an interest of a few events keeps an expert of its own however many other events
there are: 10^4 events at the floor weigh about 10^-10 of one routed event (T = 16). An expert no
event was routed to reads as the mean of the prefix. The floor keeps every weight at least
``e^{-2T} / k``, the bound ``exp(s - T) >= e^{-2T}`` of the compress over events divided by k, so
the denominators and their squares in the backward stay normal floats with recency decay as they
do there (at the default T = 16; with weights of exactly 0, an expert whose routed events have
decayed far divided by a denominator near 0 and its gradients were not finite). Either way it is the
same computation with ``u`` from :func:`compress_weights` in place of ``exp(s - T)``: every path,
the decay and the incremental state are unchanged.

The window is this project's addition (docs/long_sequences.md, "ELASTIC"): the experts summarise
the whole prefix, the window keeps the latest events exact, as KSA's window does for its chunks;
it costs O(L W d) more and the incremental state keeps the last W events.

Recency decay (optional, also this project's addition). With per-head, per-expert rates
``lam_e >= 0`` (``decay``, (H, k), clamped to [0, ln 2]: half-lives of at least one event), event j
counts in expert e's summary at position t with the weight ``exp(s_ej - lam_e (t - j))`` instead of
``exp(s_ej)``: a softmax-weighted mean in which older events fade, at a different speed per expert,
so some experts hold short-term and others long-term interests (as the multi-scale decays of
retention / gated linear attention). Distances count positions: under left padding, the models'
layout, the number of events between j and t. It stays near-linear: the state before a chunk decays
by ``exp(-lam C)`` per chunk (per head and expert, one transition over the n chunks up to
:data:`DECAY_ONE_LEVEL_CHUNKS`, beyond that transitions within and between blocks of about sqrt(n)
chunks: :func:`_decayed_prefix`), and inside a chunk the weight ``exp(-lam (a - b))`` of event b
at position a factors into ``exp(-lam a) exp(lam b)``. The first factor is common to every weight of
position a, numerators and denominator alike, so it cancels in the softmax-weighted mean: position
a's terms are the undecayed ones with u_b scaled by ``exp(lam b)`` (at most ``exp(lam (C - 1))``, so
C is capped at :data:`DECAY_MAX_CHUNK`) and the state at the chunk's start, and no per-position
factor is left (:class:`ChunkStates`). The denominators stay at least u_a, as without decay, so
their squares in the backward stay normal floats (a factor centred on the chunk's middle would push
them below float32's range). The incremental state multiplies by ``exp(-lam)`` per new event.

Stability without a running max. Logits are clamped to [-T, T] (the layer keeps them there by
construction: cosine similarity times a scale < T), so ``exp(s - T)`` lies in [e^{-2T}, 1]: no
overflow, and with T <= 40 no underflow in float32 either. The fixed stabiliser T replaces the
running max of online softmax, so the prefix sums are plain cumulative sums, every position's
output is bitwise independent of later events, and the incremental state is just (numerators,
denominator). Prefix sums, denominators and softmaxes run in float32 whatever the input dtype;
the chunked path's matmul operands are bfloat16 for bfloat16 inputs (:func:`matmul_dtype`: float32
operands fall off the tensor cores: most of a step at L = 16k in the H200 profile of
benchmarks/gpu/profile.sh).

Implementations:
    - :func:`dispatcher_attention_reference`: explicit (L, L) causal mask and softmax per expert,
      O(B H k L^2 d). Tests only.
    - :func:`dispatcher_attention_chunked`: per chunk of C positions, the state before the chunk
      (exclusive prefix sum of per-chunk sums, (n, k, d)) plus the masked intra-chunk terms,
      written as matmuls: O(B H L (C + k) d) time, O(B H L (C + k)) extra memory, no Python loop
      over chunks, no data-dependent control flow (torch.compile-friendly); with recency decay,
      the state before each chunk comes from decayed transitions between chunks, O(B H k n^2 d)
      more up to :data:`DECAY_ONE_LEVEL_CHUNKS` chunks, O(B H k n^1.5 d) beyond (two levels), or
      on CUDA from one Triton scan per direction, O(B H k n d) (:data:`DECAY_SCAN`,
      ``ops/decay_scan_triton.py``).
    - ``ops/dispatcher_triton.dispatcher_attention_triton``: the chunked algorithm with one Triton
      kernel per chunk and direction (opt-in ``impl="triton"``; CUDA, no extra tokens).
    - :func:`dispatcher_step`: one new event per row, O(H (k + W) d), from a
      :class:`DispatcherState`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

Impl = Literal["reference", "fast", "triton"]
IMPLS: tuple[str, ...] = ("reference", "fast", "triton")
MAX_LOGIT_BOUND = 40.0  # e^{-2T} must stay a normal float32 (> 1.2e-38): T <= 43
MAX_DECAY = math.log(2.0)  # recency decay per position: a half-life of at least one event
# with decay, chunks are at most this long: the intra-chunk factors e^{lam b} stay below 2^63, and the
# sums of C of them well inside float32's range
DECAY_MAX_CHUNK = 64
# with decay, the chunk-level state takes one (n, n) transition up to this many chunks, two levels beyond
# (at 16k and C = 64, 256 chunks: one level timed slower than two on the H200, compiled and autotuned,
# benchmarks/results/longseq_speed_decay_onelevel256.json against longseq_speed_decay.json)
DECAY_ONE_LEVEL_CHUNKS = 64
# with decay, how the chunk-level state is computed: "auto" (the Triton scan of ops/decay_scan_triton.py
# for CUDA tensors where triton imports, else the transitions above), "torch" (the transitions) or
# "triton" (the scan, an error where it cannot run). Read at call time (benchmarks/longseq_speed.py
# --decay-scan times one against the other).
DecayScan = Literal["auto", "torch", "triton"]
DECAY_SCANS: tuple[str, ...] = ("auto", "torch", "triton")
DECAY_SCAN: DecayScan = "auto"
# what each expert's compress softmax normalises over: "events" (expert e's summary is a softmax over
# the prefix's events, the reconstruction's compress) or "experts" (each event splits a unit weight
# over the k experts by a softmax, and expert e's summary is the mean of the events by the weight they
# route to it: the behaviour-to-interest routing of multi-interest retrievers; module docstring)
CompressOver = Literal["events", "experts"]
COMPRESS_OVER: tuple[str, ...] = ("events", "experts")


def _check_inputs(
    q: torch.Tensor,
    expert_q: torch.Tensor,
    kc: torch.Tensor,
    zk: torch.Tensor,
    zv: torch.Tensor,
    valid: torch.Tensor | None,
    extra_k: torch.Tensor | None,
    extra_v: torch.Tensor | None,
    logit_bound: float,
    window: int = 0,
    decay: torch.Tensor | None = None,
    compress_over: str = "events",
    route_topk: int = 0,
) -> None:
    check_compress(compress_over, route_topk, expert_q.shape[-2])
    if isinstance(window, bool) or not isinstance(window, int) or window < 0:
        raise ValueError(f"window must be an int >= 0. Got {window!r} instead.")
    if decay is not None and (decay.ndim != 2 or decay.shape != expert_q.shape[-3:-1]):
        raise ValueError(
            f"decay must have shape (H, k) = {tuple(expert_q.shape[-3:-1])}, one rate per head and "
            f"expert. Got {tuple(decay.shape)} instead."
        )
    if q.ndim != 4:
        raise ValueError(f"q must have shape (B, H, L, d). Got {tuple(q.shape)} instead.")
    for name, t in (("kc", kc), ("zk", zk), ("zv", zv)):
        if t.shape != q.shape:
            raise ValueError(
                f"{name} must have the shape of q {tuple(q.shape)}. Got {tuple(t.shape)} instead."
            )
    B, H, L, d = q.shape
    if expert_q.ndim not in (3, 4) or expert_q.shape[-3] != H or expert_q.shape[-1] != d:
        raise ValueError(
            f"expert_q must have shape (H, k, d) or (B, H, k, d) with H={H}, d={d}. "
            f"Got {tuple(expert_q.shape)} instead."
        )
    if valid is not None and valid.shape != (B, L):
        raise ValueError(f"valid must have shape ({B}, {L}). Got {tuple(valid.shape)} instead.")
    if (extra_k is None) != (extra_v is None):
        raise ValueError("extra_k and extra_v must be given together.")
    if extra_k is not None and (
        extra_k.ndim != 5 or extra_k.shape[:3] != (B, H, L) or extra_k.shape[-1] != d
    ):
        raise ValueError(
            f"extra_k must have shape ({B}, {H}, {L}, m, {d}). Got {tuple(extra_k.shape)} instead."
        )
    if extra_v is not None and extra_k is not None and extra_v.shape != extra_k.shape:
        raise ValueError(
            f"extra_v must have the shape of extra_k {tuple(extra_k.shape)}. "
            f"Got {tuple(extra_v.shape)} instead."
        )
    if not 0.0 < logit_bound <= MAX_LOGIT_BOUND:
        raise ValueError(
            f"logit_bound must be in (0, {MAX_LOGIT_BOUND}]. Got {logit_bound!r} instead."
        )


def matmul_dtype(dtype: torch.dtype) -> torch.dtype:
    """Operand dtype of the chunked path's matmuls: bfloat16 for bfloat16 inputs, else float32.

    bfloat16 operands run on tensor cores (cuBLAS accumulates in float32); every prefix sum,
    denominator and softmax stays float32. float16 keeps float32 operands: ``p / den`` reaches
    e^{2T} (about 8e13 for T = 16), past float16's range.
    """
    return torch.bfloat16 if dtype == torch.bfloat16 else torch.float32


def decay_rates(decay: torch.Tensor) -> torch.Tensor:
    """(H, k) decay rates as used: float32, clamped to [0, :data:`MAX_DECAY`]."""
    return decay.float().clamp(0.0, MAX_DECAY)


def _compress_logits(expert_q: torch.Tensor, kc: torch.Tensor, bound: float) -> torch.Tensor:
    """(B or 1, H, k, d) x (B, H, L, d) -> (B, H, L, k) clamped compress logits, float32."""
    if expert_q.ndim == 3:
        expert_q = expert_q.unsqueeze(0)
    cd = matmul_dtype(kc.dtype)  # bf16 operands for bf16 inputs, as autocast would run them
    s = (kc.to(cd) @ expert_q.to(cd).transpose(-1, -2)).float()  # (B, H, L, k)
    return s.clamp(-bound, bound)


def check_compress(over: str, topk: int, experts: int) -> None:
    """``compress_over`` must be one of :data:`COMPRESS_OVER`; ``route_topk`` an int in [0, k], and
    0 unless the compress is routed over the experts."""
    if over not in COMPRESS_OVER:
        raise ValueError(f"compress_over must be one of {COMPRESS_OVER}. Got {over!r} instead.")
    if isinstance(topk, bool) or not isinstance(topk, int) or not 0 <= topk <= experts:
        raise ValueError(
            f"route_topk must be an int in [0, {experts}] (0: every expert). Got {topk!r} instead."
        )
    if topk and over != "experts":
        raise ValueError(
            f"route_topk={topk} routes each event to its top experts: it needs "
            "compress_over='experts'."
        )


def route_floor(bound: float, experts: int) -> float:
    """The weight an event gives an expert it is not routed to (``route_topk``): e^{-2T} / k, the
    least weight a soft route can give (module docstring)."""
    return math.exp(-2.0 * bound) / experts


def route_keep(r: torch.Tensor, topk: int) -> torch.Tensor | None:
    """Routing weights r (..., k) -> bool (..., k), True at each event's ``topk`` largest (ties at
    the k-th all kept), or None when every expert is kept (``topk`` 0 or k). The mask carries no
    gradient, so it is taken from ``r.detach()``.

    Eager it is ``r >= r.topk(topk, -1).values[..., -1:]``, one kernel; under ``torch.compile`` the
    same threshold comes from :func:`route_level`, which Inductor fuses with the softmax around it
    (``aten.topk`` would stay a kernel of its own, a fallback: ``longseq_speed_route.json``).
    """
    if not 0 < topk < r.shape[-1]:
        return None
    r = r.detach()
    if torch.compiler.is_compiling():
        return r >= route_level(r, topk)
    return r >= r.topk(topk, -1).values[..., -1:]


def route_level(r: torch.Tensor, topk: int) -> torch.Tensor:
    """(..., k) -> (..., 1): the ``topk``-th largest value counted with repeats, which is
    ``r.topk(topk, -1).values[..., -1:]``, without ``topk``: ``topk`` passes over the distinct
    values from the largest down, each a masked row maximum, until the values taken cover ``topk``
    entries; elementwise ops and row maxima only, so ``torch.compile`` fuses them."""
    level = torch.full_like(r[..., :1], math.inf)  # the last value taken
    taken = torch.zeros_like(r[..., :1], dtype=torch.int32)  # entries at or above ``level``
    for _ in range(topk):
        done = taken >= topk
        below = torch.where(r < level, r, -math.inf).amax(-1, keepdim=True)
        more = (r == below).sum(-1, keepdim=True, dtype=torch.int32)
        taken = torch.where(done, taken, taken + more)
        level = torch.where(done, level, below)
    return level


def compress_weights(
    s: torch.Tensor, bound: float, over: CompressOver = "events", topk: int = 0
) -> torch.Tensor:
    """Clamped compress logits s (..., k) -> the events' unnormalised weights u (..., k), float32.

    ``over="events"``: ``u = exp(s - T)`` in [e^{-2T}, 1], normalised later over the prefix's events
    (each expert's summary a softmax over events). ``over="experts"``: ``u = softmax_e(s)``, each
    event's unit weight split over the k experts (in [e^{-2T} / k, 1]), normalised later over the
    events routed to each expert; with ``topk`` r > 0 only each event's r largest are kept (not
    renormalised, so the routing logits keep a gradient, as in Switch-style gating), the others
    set to :func:`route_floor`. The prefix sums stay plain cumulative sums.
    """
    if over != "experts":
        return torch.exp(s.float() - bound)
    r = s.float().softmax(-1)
    keep = route_keep(r, topk)
    return r if keep is None else torch.where(keep, r, route_floor(bound, r.shape[-1]))


def _dispatch(
    logits: torch.Tensor, *extras: torch.Tensor | None
) -> tuple[torch.Tensor | None, ...]:
    """Softmax over the k expert logits (..., k) and every given group of extra logits (..., m_i)
    jointly (-inf marks an absent token); returns one probability tensor per group, None where the
    group is None."""
    given = [e for e in extras if e is not None]
    if not given:
        return (logits.softmax(-1), *(None for _ in extras))
    parts = (
        torch.cat([logits, *given], -1)
        .softmax(-1)
        .split([logits.shape[-1], *(e.shape[-1] for e in given)], -1)
    )
    probs = iter(parts[1:])
    return (parts[0], *(None if e is None else next(probs) for e in extras))


def _unfold_window(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, L, d) -> (B, H, L, d, W) view: [..., t, :, w] = x at position t - W + 1 + w
    (zeros before the start)."""
    return F.pad(x, (0, 0, window - 1, 0)).unfold(2, window, 1)


def window_logits(
    q: torch.Tensor, zk: torch.Tensor, valid: torch.Tensor, window: int
) -> torch.Tensor:
    """The local window's dispatch logits: q, zk (B, H, L, d), valid (B, L) -> (B, H, L, W) float32,
    [t, w] = q_t . zk_{t-W+1+w}, -inf where that event is before the start or not valid."""
    logits = (q.unsqueeze(-2) @ _unfold_window(zk, window)).squeeze(-2).float()  # (B, H, L, W)
    ok = F.pad(valid, (window - 1, 0)).unfold(1, window, 1)  # (B, L, W)
    return logits.masked_fill(~ok[:, None], float("-inf"))


def window_values(p: torch.Tensor, zv: torch.Tensor) -> torch.Tensor:
    """Window probabilities p (B, H, L, W) and zv (B, H, L, d) -> (B, H, L, d) float32,
    sum_w p[t, w] zv_{t-W+1+w}."""
    zw = _unfold_window(zv, p.shape[-1])  # (B, H, L, d, W)
    return (zw @ p.to(zw.dtype).unsqueeze(-1)).squeeze(-1).float()


def dispatcher_attention_reference(
    q: torch.Tensor,
    expert_q: torch.Tensor,
    kc: torch.Tensor,
    zk: torch.Tensor,
    zv: torch.Tensor,
    valid: torch.Tensor | None = None,
    *,
    logit_bound: float = 16.0,
    extra_k: torch.Tensor | None = None,
    extra_v: torch.Tensor | None = None,
    window: int = 0,
    decay: torch.Tensor | None = None,
    compress_over: CompressOver = "events",
    route_topk: int = 0,
) -> torch.Tensor:
    """Causal LDA with an explicit (L, L) mask: the definition in the module docstring.

    Args:
        q: (B, H, L, d) dispatch queries (already scaled, e.g. by 1/sqrt(d)).
        expert_q: (H, k, d) or (B, H, k, d) compress queries of the k interest experts.
        kc: (B, H, L, d) compress keys; ``expert_q . kc`` are the compress logits.
        zk, zv: (B, H, L, d) event streams averaged into the expert keys / values.
        valid: (B, L) bool, False at padding (padding is never part of any state); all True if None.
        logit_bound: T, the compress logits are clamped to [-T, T].
        extra_k, extra_v: (B, H, L, m, d) per-position extra dispatch tokens, or None.
        window: W: position t also dispatches exactly from the valid events j in (t - W, t]
            (keys zk, values zv; t itself included); 0 = none.
        decay: (H, k) recency decay rates per position (module docstring), or None (no decay).
        compress_over: ``"events"`` (each expert's summary a softmax over the prefix's events) or
            ``"experts"`` (each event's weight split over the experts by a softmax over them; each
            expert the mean of the events by the weight they route to it). Module docstring.
        route_topk: with ``compress_over="experts"``, r > 0 routes each event to its r best
            experts only (the others get the floor e^{-2T} / k; an expert no event was routed to
            reads as the mean of the prefix); 0 = every expert.

    Returns:
        (B, H, L, d) in the dtype of q; zero where not valid.
    """
    _check_inputs(
        q, expert_q, kc, zk, zv, valid, extra_k, extra_v, logit_bound, window, decay, compress_over,
        route_topk,
    )  # fmt: skip
    B, _, L, _ = q.shape
    if valid is None:
        valid = torch.ones(B, L, dtype=torch.bool, device=q.device)
    s = _compress_logits(expert_q, kc, logit_bound)  # (B, H, L, k)
    if compress_over == "experts":  # softmax_j(log u_je) = u_je / sum_i u_ie, u = softmax_e(s)
        s = s.log_softmax(-1)
        keep = route_keep(s, route_topk)  # the top experts by log r are those by r
        if keep is not None:  # the others: the floor's log
            floor = math.log(route_floor(logit_bound, s.shape[-1]))
            s = torch.where(keep, s, torch.full_like(s, floor))
    s = s.permute(0, 1, 3, 2)  # (B, H, k, L)
    causal = torch.ones(L, L, dtype=torch.bool, device=q.device).tril()  # [t, j]: j <= t
    allowed = causal[None] & valid[:, None, :]  # (B, L, L)
    logits = s[:, :, :, None, :].expand(-1, -1, -1, L, -1)  # (B, H, k, L, L): [t, j] = s_j
    if decay is not None:  # - lam_e (t - j)
        t = torch.arange(L, device=q.device, dtype=torch.float32)
        age = (t[:, None] - t[None, :]).clamp_min(0.0)  # (L, L)
        logits = logits - decay_rates(decay)[None, :, :, None, None] * age
    logits = logits.masked_fill(~allowed[:, None, None], float("-inf"))
    a = torch.nan_to_num(logits.softmax(-1), nan=0.0)  # rows without a valid event: all zero
    kz = a @ zk.float()[:, :, None]  # (B, H, k, L, d)
    vz = a @ zv.float()[:, :, None]  # (B, H, k, L, d)
    qf = q.float()
    disp = (qf[:, :, None] * kz).sum(-1).permute(0, 1, 3, 2)  # (B, H, L, k)
    extra_logits = None
    if extra_k is not None:
        extra_logits = (qf[:, :, :, None] * extra_k.float()).sum(-1)  # (B, H, L, m)
    win_logits = None
    if window:
        t = torch.arange(L, device=q.device)
        band = allowed & (t[:, None] - t[None, :] < window)  # (B, L, L): t - W < j <= t, valid
        win_logits = (qf @ zk.float().transpose(-1, -2)).masked_fill(~band[:, None], float("-inf"))
    p, pe, pw = _dispatch(disp, extra_logits, win_logits)
    y = (p.permute(0, 1, 3, 2)[..., None] * vz).sum(2)  # (B, H, L, d)
    if pe is not None and extra_v is not None:
        y = y + (pe[..., None] * extra_v.float()).sum(3)
    if pw is not None:
        y = y + pw @ zv.float()  # (B, H, L, L) @ (B, H, L, d)
    return (y * valid[:, None, :, None]).to(q.dtype)


@dataclass(frozen=True)
class ChunkStates:
    """What the chunked algorithms share: the inputs cut into n chunks of C (front-padded with
    invalid positions to n C) and the state before each chunk.

    q, zk, zv: (B, H, n, C, d) in :func:`matmul_dtype`. u: (B, H, n, C, k) float32, u = exp(s - T),
    0 at padding; ut: (B, H, n, k, C), u transposed in the matmul dtype. sk, sv: (B, H, n, k, d)
    float32, sums of u zk / u zv over all earlier chunks; sd: (B, H, n, k) float32, sums of u.
    pad: positions added in front.

    With recency decay (``decay`` given), every weight of position a (in the chunk) is divided by
    ``exp(-lam a)``: a common factor of the numerators and the denominator of each expert, so the
    dispatch and the output do not change. Then u is ``u_b exp(lam b)`` (b the position in the
    chunk), and sk, sv, sd are the decayed sums of the earlier chunks at the chunk's start: the same
    formulas as without decay, with no per-position factor left.
    """

    q: torch.Tensor
    zk: torch.Tensor
    zv: torch.Tensor
    u: torch.Tensor
    ut: torch.Tensor
    sk: torch.Tensor
    sv: torch.Tensor
    sd: torch.Tensor
    pad: int

    def cut(self, x: torch.Tensor) -> torch.Tensor:
        """Another (B, H, L, *) tensor cut the same way -> (B, H, n, C, *)."""
        return _cut(x, self.pad, *self.q.shape[2:4])


def _cut(x: torch.Tensor, pad: int, n: int, C: int) -> torch.Tensor:
    """(B, H, L, *) -> (B, H, n, C, *), ``pad`` invalid positions added in front (n C = L + pad)."""
    x = F.pad(x, (0, 0) * (x.ndim - 3) + (pad, 0)) if pad else x
    return x.reshape(*x.shape[:2], n, C, *x.shape[3:])


def _transition(lam: torch.Tensor, n: int) -> torch.Tensor:
    """(H, k) decay per step -> (H, k, n, n) float32 exclusive transition: [c, c'] =
    exp(-lam (c - 1 - c')) for c' < c, else 0."""
    step = torch.arange(n, device=lam.device, dtype=torch.float32)
    gap = step[:, None] - 1 - step[None, :]  # (n, n): c - 1 - c'
    return torch.exp(-lam[:, :, None, None] * gap.clamp_min(0.0)) * (gap >= 0)


def _decayed_prefix(
    x: torch.Tensor, lam: torch.Tensor, one_level_max: int | None = None
) -> torch.Tensor:
    """Exclusive decayed prefix over the chunk axis: x (B, H, n, k, d) holds each chunk's sum at
    its end, lam (H, k) the decay per chunk; returns (B, H, n, k, d) with
    ``[c] = sum_{c' < c} exp(-lam (c - 1 - c')) x[c']``, the state at chunk c's start.

    Up to ``one_level_max`` chunks (default: :data:`DECAY_ONE_LEVEL_CHUNKS`, read at call time,
    so ``benchmarks/longseq_speed.py --decay-one-level-chunks`` can time another threshold) it is
    one (n, n) transition: one product, where the two levels below would launch several small
    kernels (on the GPU, unfused, that costs more than the O(n^2) work). Beyond, two levels keep it near-linear: blocks of G ~ sqrt(n) chunks take a
    (G, G) transition inside and a (m, m) one between their ends (m = ceil(n / G) blocks),
    O(n (G + m)) instead of O(n^2) (at L = 64k and C = 64: n = 1,024 chunks, G = m = 32). The
    recurrence ``state <- exp(-lam) state + x`` written as two levels of elementwise loops instead
    of products timed no faster compiled and slower eager on the H200
    (benchmarks/results/longseq_speed_decay_scan.json).
    """
    B, H, n, k, d = x.shape
    if n <= (DECAY_ONE_LEVEL_CHUNKS if one_level_max is None else one_level_max):
        return torch.einsum("hecx,bhxed->bhced", _transition(lam, n), x)
    G = max(1, math.isqrt(max(n - 1, 0)) + 1)  # ceil(sqrt(n)) for n > 0
    m = -(-n // G)
    xb = F.pad(x, (0, 0, 0, 0, 0, m * G - n)).reshape(B, H, m, G, k, d)  # zero chunks at the end
    inner = torch.einsum("hecx,bhmxed->bhmced", _transition(lam, G), xb)  # within each block
    # each block's total at its end: chunk c' decays over the G - 1 - c' chunks after it
    tail = torch.exp(-lam[:, :, None] * torch.arange(G - 1, -1, -1, device=x.device))  # (H, k, G)
    ends = torch.einsum("hex,bhmxed->bhmed", tail, xb)  # (B, H, m, k, d)
    starts = torch.einsum("hemy,bhyed->bhmed", _transition(lam * G, m), ends)  # block starts
    into = torch.exp(-lam[:, :, None] * torch.arange(G, device=x.device))  # (H, k, G): c chunks in
    out = inner + starts[:, :, :, None] * into.permute(0, 2, 1)[None, :, None, :, :, None]
    return out.reshape(B, H, m * G, k, d)[:, :, :n]


def _triton_scan(x: torch.Tensor) -> bool:
    """Whether the chunk-level decayed state of ``x`` runs as the Triton scan (:data:`DECAY_SCAN`)."""
    if DECAY_SCAN not in DECAY_SCANS:
        raise ValueError(f"DECAY_SCAN must be one of {DECAY_SCANS}. Got {DECAY_SCAN!r} instead.")
    if DECAY_SCAN == "torch" or (DECAY_SCAN == "auto" and not x.is_cuda):
        return False  # (no import on CPU: the interpreter's tests must define the kernels first)
    from shortlist.ops import decay_scan_triton

    if DECAY_SCAN == "auto":
        return decay_scan_triton.available()
    if not decay_scan_triton.available():
        raise ImportError("DECAY_SCAN='triton' needs the triton package (pip install triton).")
    if not x.is_cuda and os.environ.get("TRITON_INTERPRET") != "1":
        raise ValueError(
            "DECAY_SCAN='triton' runs on CUDA tensors (on CPU only under TRITON_INTERPRET=1, for "
            "tests). Use 'auto' or 'torch'."
        )
    return True


def decayed_chunk(chunk: int, decay: torch.Tensor | None) -> int:
    """The chunk length the chunked paths use: ``chunk``, at most :data:`DECAY_MAX_CHUNK` with
    recency decay (``decay`` not None)."""
    return chunk if decay is None else min(chunk, DECAY_MAX_CHUNK)


def chunk_states(
    q: torch.Tensor,
    expert_q: torch.Tensor,
    kc: torch.Tensor,
    zk: torch.Tensor,
    zv: torch.Tensor,
    valid: torch.Tensor,
    logit_bound: float,
    chunk: int,
    whole_chunk: bool = False,
    decay: torch.Tensor | None = None,
    compress_over: CompressOver = "events",
    route_topk: int = 0,
) -> ChunkStates:
    """Cut (B, H, L, d) inputs into chunks and compute the exclusive prefix states (the chunked
    path's first half, shared by ``ops/dispatcher_triton.py``); ``valid`` (B, L) bool. Chunks are
    ``min(chunk, L)`` long, or ``chunk`` with ``whole_chunk`` (fixed-size kernel tiles). ``decay``
    (H, k) rates: the rescaled u and decayed states of :class:`ChunkStates` (chunks then
    :func:`decayed_chunk` long). ``compress_over``: how u is formed (:func:`compress_weights`)."""
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be an int >= 1. Got {chunk!r} instead.")
    chunk = decayed_chunk(chunk, decay)
    L = q.shape[2]
    C = chunk if whole_chunk else (min(chunk, L) if L > 0 else 1)
    n = -(-L // C)
    pad = n * C - L
    s = _compress_logits(expert_q, kc, logit_bound)  # (B, H, L, k)
    u = compress_weights(s, logit_bound, compress_over, route_topk) * valid[:, None, :, None]
    cd = matmul_dtype(q.dtype)
    uc32 = _cut(u, pad, n, C)  # (B, H, n, C, k), float32
    if decay is not None:  # uc32 becomes u_b exp(lam b) (ChunkStates)
        lam = decay_rates(decay)[None, :, None, None, :]  # (1, H, 1, 1, k)
        b = torch.arange(C, device=q.device, dtype=torch.float32)[None, None, None, :, None]
        uc32 = uc32 * torch.exp(lam * b)
    zkc, zvc = _cut(zk.to(cd), pad, n, C), _cut(zv.to(cd), pad, n, C)  # (B, H, n, C, d)
    ut = uc32.to(cd).transpose(-1, -2)  # (B, H, n, k, C)

    def before(x: torch.Tensor) -> torch.Tensor:  # exclusive prefix over the chunk axis (2)
        return F.pad(x.cumsum(2), (0, 0) * (x.ndim - 3) + (1, 0))[:, :, :n]

    sk, sv, sd = (ut @ zkc).float(), (ut @ zvc).float(), uc32.sum(3)  # per chunk
    if decay is None:
        sk, sv, sd = before(sk), before(sv), before(sd)
    else:  # state at chunk c's start: sum_{c' < c} exp(-lam C (c - 1 - c')) (chunk c' at its end)
        lam_c = decay_rates(decay) * C  # (H, k): decay per chunk
        # a chunk's sum at its end (the next chunk's start): u_b exp(lam b) decays by exp(-lam C).
        # The three states in one pass: [sk | sv | sd] on the last axis (three passes, aligned but
        # more kernels, timed no faster: benchmarks/results/longseq_speed_decay_split.json)
        joint = torch.cat([sk, sv, sd[..., None]], -1)
        if _triton_scan(joint):  # one scan per direction (ops/decay_scan_triton.py)
            from shortlist.ops.decay_scan_triton import decayed_prefix_triton

            state = decayed_prefix_triton(joint, torch.exp(-lam_c))
        else:
            state = _decayed_prefix(joint * torch.exp(-lam_c)[None, :, None, :, None], lam_c)
        sk, sv, sd = state.split([sk.shape[-1], sv.shape[-1], 1], -1)
        sd = sd[..., 0]
    return ChunkStates(
        q=_cut(q.to(cd), pad, n, C), zk=zkc, zv=zvc, u=uc32, ut=ut, sk=sk, sv=sv, sd=sd, pad=pad,
    )  # fmt: skip


def dispatcher_attention_chunked(
    q: torch.Tensor,
    expert_q: torch.Tensor,
    kc: torch.Tensor,
    zk: torch.Tensor,
    zv: torch.Tensor,
    valid: torch.Tensor | None = None,
    *,
    logit_bound: float = 16.0,
    extra_k: torch.Tensor | None = None,
    extra_v: torch.Tensor | None = None,
    chunk: int = 64,
    window: int = 0,
    decay: torch.Tensor | None = None,
    compress_over: CompressOver = "events",
    route_topk: int = 0,
) -> torch.Tensor:
    """Causal LDA in linear time: chunk-prefix states plus masked intra-chunk matmuls.

    Same arguments and result as :func:`dispatcher_attention_reference`, plus ``chunk`` (C). With
    ``u_tj = exp(s_tj - T)`` (or ``softmax_e(s_tj)`` with ``compress_over="experts"``; 0 at
    padding), per chunk c of positions:
        state before c:  SK[e] = sum_{j < c} u_je zk_j, SV[e] likewise, SD[e] = sum_{j < c} u_je
        intra-chunk:     (Q Zk^T . mask) U gives sum_{j <= t in c} u_je q_t.zk_j;  mask U the
                         denominators; ((R U^T) . mask) Zv the value term, R = p / den.
    Left padding of L to n C uses invalid positions, so any padding side is handled. The local
    window (``window`` W > 0) is O(L W d): its logits and values read W shifted views of zk and zv
    (:func:`window_logits`, :func:`window_values`). With ``decay`` (H, k), the same formulas
    run on :func:`chunk_states`' rescaled u and states (:class:`ChunkStates`, module docstring).
    """
    _check_inputs(
        q, expert_q, kc, zk, zv, valid, extra_k, extra_v, logit_bound, window, decay, compress_over,
        route_topk,
    )  # fmt: skip
    if valid is None:
        valid = torch.ones(q.shape[0], q.shape[2], dtype=torch.bool, device=q.device)
    ch = chunk_states(
        q, expert_q, kc, zk, zv, valid, logit_bound, chunk, decay=decay,
        compress_over=compress_over, route_topk=route_topk,
    )  # fmt: skip
    B, H, n, C, d = ch.q.shape
    qc, zkc, zvc, uc32, ut, sk, sv, sd = ch.q, ch.zk, ch.zv, ch.u, ch.ut, ch.sk, ch.sv, ch.sd
    cd = qc.dtype
    uc = ut.transpose(-1, -2)  # (B, H, n, C, k) in the matmul dtype
    mask = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()  # [t, j]: j <= t
    qk = (qc @ zkc.transpose(-1, -2)).masked_fill(~mask, 0.0)  # (B, H, n, C, C)
    # sum_j u_je q_t.zk_j (B, H, n, C, k) and the denominators: state part + intra-chunk part
    num = (qc @ sk.to(cd).transpose(-1, -2)).float() + (qk @ uc).float()
    den = sd[:, :, :, None, :] + uc32.cumsum(3)  # (B, H, n, C, k); 0 only at padding rows
    den = den.clamp_min(torch.finfo(torch.float32).tiny)
    extra_logits = None
    if extra_k is not None:
        extra_logits = (qc.float()[..., None, :] * ch.cut(extra_k.float())).sum(-1)
    win_logits = None
    if window:  # (B, H, n, C, W); the front padding's rows are dropped below
        win_logits = ch.cut(window_logits(q.to(cd), zk.to(cd), valid, window))
    # (B, H, n, C, k), (B, H, n, C, m), (B, H, n, C, W)
    p, pe, pw = _dispatch(num / den, extra_logits, win_logits)
    r = (p / den).to(cd)  # (B, H, n, C, k)
    y = (r @ sv.to(cd)).float()  # (B, H, n, C, d)
    y = y + ((r @ ut).masked_fill(~mask, 0.0) @ zvc).float()
    if pe is not None and extra_v is not None:
        y = y + (pe[..., None] * ch.cut(extra_v.float())).sum(-2)
    y = y.reshape(B, H, n * C, d)[:, :, ch.pad :]  # (B, H, L, d)
    if pw is not None:
        y = y + window_values(pw.reshape(B, H, n * C, window)[:, :, ch.pad :], zv.to(cd))
    return (y * valid[:, None, :, None]).to(q.dtype)


def dispatcher_attention(
    q: torch.Tensor,
    expert_q: torch.Tensor,
    kc: torch.Tensor,
    zk: torch.Tensor,
    zv: torch.Tensor,
    valid: torch.Tensor | None = None,
    *,
    logit_bound: float = 16.0,
    extra_k: torch.Tensor | None = None,
    extra_v: torch.Tensor | None = None,
    chunk: int = 64,
    impl: Impl = "fast",
    window: int = 0,
    decay: torch.Tensor | None = None,
    compress_over: CompressOver = "events",
    route_topk: int = 0,
) -> torch.Tensor:
    """The one dispatch point: ``impl="reference"`` (O(L^2), tests), ``"fast"`` (chunked) or
    ``"triton"`` (chunked, one Triton kernel per chunk: ``ops/dispatcher_triton.py``; no local
    window, no extra tokens)."""
    if impl == "reference":
        return dispatcher_attention_reference(
            q, expert_q, kc, zk, zv, valid, logit_bound=logit_bound, extra_k=extra_k,
            extra_v=extra_v, window=window, decay=decay, compress_over=compress_over,
            route_topk=route_topk,
        )  # fmt: skip
    if impl == "fast":
        return dispatcher_attention_chunked(
            q, expert_q, kc, zk, zv, valid, logit_bound=logit_bound, extra_k=extra_k,
            extra_v=extra_v, chunk=chunk, window=window, decay=decay, compress_over=compress_over,
            route_topk=route_topk,
        )  # fmt: skip
    if impl == "triton":
        if window:
            raise ValueError("impl='triton' has no local window: use impl='fast' with window > 0.")
        from shortlist.ops.dispatcher_triton import dispatcher_attention_triton

        return dispatcher_attention_triton(
            q, expert_q, kc, zk, zv, valid, logit_bound=logit_bound, extra_k=extra_k,
            extra_v=extra_v, chunk=chunk, decay=decay, compress_over=compress_over,
            route_topk=route_topk,
        )  # fmt: skip
    raise ValueError(f"impl must be one of {IMPLS}. Got {impl!r} instead.")


# -- incremental ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DispatcherState:
    """Compressed expert state after a prefix, float32 (exact: no running max is needed), and the
    local window's last W events.

    num_k, num_v: (B, H, k, d) sums of ``u_je zk_j`` / ``u_je zv_j`` over the events so far.
    den: (B, H, k) sums of ``u_je``.
    recent_k, recent_v: (B, H, W, d) zk / zv of the last W events, oldest first (W may be 0); the
        same window as the full path's under left padding (a step with ``valid`` False adds none).
    recent_valid: (B, W) bool, False for slots not yet filled.
    """

    num_k: torch.Tensor
    num_v: torch.Tensor
    den: torch.Tensor
    recent_k: torch.Tensor
    recent_v: torch.Tensor
    recent_valid: torch.Tensor

    @property
    def window(self) -> int:
        """W, the local window of the state (0 = none)."""
        return self.recent_k.shape[2]

    @staticmethod
    def zeros(
        batch: int,
        heads: int,
        experts: int,
        head_dim: int,
        device: torch.device | str = "cpu",
        window: int = 0,
    ) -> DispatcherState:
        z = torch.zeros(batch, heads, experts, head_dim, device=device)
        r = torch.zeros(batch, heads, window, head_dim, device=device)
        return DispatcherState(
            num_k=z, num_v=z.clone(), den=z[..., 0].clone(), recent_k=r, recent_v=r.clone(),
            recent_valid=torch.zeros(batch, window, dtype=torch.bool, device=device),
        )  # fmt: skip


def _push(window: torch.Tensor, new: torch.Tensor, rows: torch.Tensor, dim: int) -> torch.Tensor:
    """``window`` (B, ...) with its oldest slot along ``dim`` dropped and ``new`` (size 1 along
    ``dim``) appended, in the rows where ``rows`` (B,) is True; the other rows unchanged."""
    moved = torch.cat([window.narrow(dim, 1, window.shape[dim] - 1), new], dim)
    return torch.where(rows.view(-1, *(1,) * (window.ndim - 1)), moved, window)


def dispatcher_step(
    state: DispatcherState,
    q: torch.Tensor,
    expert_q: torch.Tensor,
    kc: torch.Tensor,
    zk: torch.Tensor,
    zv: torch.Tensor,
    valid: torch.Tensor | None = None,
    *,
    logit_bound: float = 16.0,
    extra_k: torch.Tensor | None = None,
    extra_v: torch.Tensor | None = None,
    decay: torch.Tensor | None = None,
    compress_over: CompressOver = "events",
    route_topk: int = 0,
) -> tuple[torch.Tensor, DispatcherState]:
    """Append one event per row: update the expert state in O(H k d) (and the window's last W
    events) and dispatch it.

    Args:
        state: the state after the previous events (its window W is the one the full path used).
        q, kc, zk, zv: (B, H, d) the new event's projections.
        expert_q: (H, k, d) or (B, H, k, d).
        valid: (B,) bool; rows where False keep their state and output zero.
        extra_k, extra_v: (B, H, m, d) or None.
        decay: (H, k) recency decay rates, or None: the rows with a new event multiply their
            sums by ``exp(-lam)`` before adding it (as the full path under left padding).
        compress_over, route_topk: as in :func:`dispatcher_attention_reference` (the full path's
            choice).

    Returns:
        (B, H, d) the output at the new position (dtype of q) and the new state.
    """
    B = q.shape[0]
    if valid is None:
        valid = torch.ones(B, dtype=torch.bool, device=q.device)
    eq = expert_q if expert_q.ndim == 4 else expert_q.unsqueeze(0)
    s = (eq.float() @ kc.float()[..., None])[..., 0].clamp(-logit_bound, logit_bound)  # (B,H,k)
    check_compress(compress_over, route_topk, eq.shape[-2])
    u = compress_weights(s, logit_bound, compress_over, route_topk) * valid[:, None, None]
    recent_k, recent_v, recent_valid = state.recent_k, state.recent_v, state.recent_valid
    if state.window:  # the window moves by one event in the rows that have one
        recent_k = _push(recent_k, zk.float()[:, :, None], valid, dim=2)  # (B, H, W, d)
        recent_v = _push(recent_v, zv.float()[:, :, None], valid, dim=2)
        recent_valid = _push(recent_valid, valid[:, None], valid, dim=1)  # (B, W)
    num_k, num_v, den = state.num_k, state.num_v, state.den
    if decay is not None:  # (B, H, k): exp(-lam) in the rows with an event, 1 in the others
        keep = torch.where(valid[:, None, None], torch.exp(-decay_rates(decay))[None], 1.0)
        num_k, num_v, den = num_k * keep[..., None], num_v * keep[..., None], den * keep
    new = DispatcherState(
        num_k=num_k + u[..., None] * zk.float()[:, :, None],
        num_v=num_v + u[..., None] * zv.float()[:, :, None],
        den=den + u,
        recent_k=recent_k,
        recent_v=recent_v,
        recent_valid=recent_valid,
    )
    den = new.den.clamp_min(torch.finfo(torch.float32).tiny)
    qf = q.float()
    logits = (new.num_k @ qf[..., None])[..., 0] / den  # (B, H, k)
    extra_logits = win_logits = None
    if extra_k is not None:
        extra_logits = (extra_k.float() @ qf[..., None])[..., 0]  # (B, H, m)
    if state.window:
        win_logits = (recent_k @ qf[..., None])[..., 0]  # (B, H, W)
        win_logits = win_logits.masked_fill(~recent_valid[:, None], float("-inf"))
    p, pe, pw = _dispatch(logits, extra_logits, win_logits)
    y = ((p / den)[..., None] * new.num_v).sum(2)  # (B, H, d)
    if pe is not None and extra_v is not None:
        y = y + (pe[..., None] * extra_v.float()).sum(2)
    if pw is not None:
        y = y + (pw[..., None] * recent_v).sum(2)
    return (y * valid[:, None, None]).to(q.dtype), new
