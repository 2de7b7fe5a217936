"""One Linear Dispatcher Attention layer: projections + causal LDA + output projection.

The per-layer callable of ELASTIC's sequence mixer (the speed benchmark times it), built on
:mod:`shortlist.ops.dispatcher`. Paper: ELASTIC (arXiv 2408.09380, withdrawn), "interest experts"
and "Linear Dispatcher Attention"; every detail here is reconstruction (PAPERS.md section 1,
docs/long_sequences.md "ELASTIC").

Notation: B batch, L positions, D width, H heads, d = D / H, k experts, m memory tokens per position.

Per head:
    dispatch query  q_t = x_t Wq / sqrt(d)
    compress logit  s_ej = g_h * cos(eq_e, x_j Wc)   with g_h = T * sigmoid(w_h) < T (bounded)
    expert streams  zk_j = x_j Wzk, zv_j = x_j Wzv    (averaged into expert keys / values)
    memory tokens   xk_ti, xv_ti = mem_ti Wmk, mem_ti Wmv   (only with ``use_memory=True``)
    local window    the last W events' zk_j, zv_j, read exactly (only with ``window`` W > 0)
    routing         with ``compress_over="experts"`` each event's compress weights are a softmax over
                    the k experts (multi-interest routing) instead of exp(s - T), with
                    ``route_topk`` r > 0 kept at its r best experts only: ops/dispatcher.py
    recency decay   lam_he = ln2 * sigmoid(w_he) per head and expert (only with ``decay_half_life``
                    > 0): the experts' initial half-lives spread geometrically from 2 events to
                    ``decay_half_life``, learned from there (at least 1 event)
and the output is ``concat_h(y) Wo``.

Example:
    >>> layer = DispatcherAttentionLayer(64, heads=2, num_experts=8, chunk=32)
    >>> layer(torch.randn(2, 100, 64)).shape
    torch.Size([2, 100, 64])
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from shortlist.ops.dispatcher import (
    IMPLS,
    MAX_DECAY,
    MAX_LOGIT_BOUND,
    CompressOver,
    DispatcherState,
    Impl,
    check_compress,
    dispatcher_attention,
    dispatcher_step,
)

_INIT_COMPRESS_SCALE = 4.0  # initial g_h: cosine logits in [-4, 4], a soft but not flat softmax


class DispatcherAttentionLayer(nn.Module):
    """Causal LDA with its projections (see the module docstring).

    Args:
        dim: D.
        heads: H; D must be divisible by H.
        num_experts: k interest experts (learned compress queries, per head).
        chunk: C, positions per chunk of the fast path.
        impl: ``"fast"`` (chunked, linear), ``"reference"`` (explicit mask, O(L^2)) or ``"triton"``
            (chunked, one Triton kernel per chunk; CUDA, no memory tokens: ops/dispatcher_triton.py).
        logit_bound: T, bound of the compress logits.
        use_memory: accept per-position memory tokens (B, L, m, D) as extra dispatch tokens.
        window: W, the most recent events each position also dispatches from exactly (its own
            included; 0 = the experts alone): ops/dispatcher.py.
        decay_half_life: 0 = no recency decay; > 0 (at least 2): learned per-expert decay of
            older events in the compress softmax (ops/dispatcher.py), the k experts' initial
            half-lives spread geometrically from 2 events to this many.
        compress_over: ``"events"`` (each expert a softmax over the prefix's events) or
            ``"experts"`` (each event routed over the experts by a softmax; each expert the mean
            of the events by their routed weight): ops/dispatcher.py.
        route_topk: with ``compress_over="experts"``, r > 0 routes each event to its r best experts
            only (0 = every expert).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        num_experts: int,
        chunk: int = 64,
        *,
        impl: Impl = "fast",
        logit_bound: float = 16.0,
        use_memory: bool = False,
        window: int = 0,
        decay_half_life: float = 0.0,
        compress_over: CompressOver = "events",
        route_topk: int = 0,
    ) -> None:
        super().__init__()
        for name, value in (("dim", dim), ("heads", heads), ("num_experts", num_experts), ("chunk", chunk)):  # fmt: skip
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"The {name!r} parameter of DispatcherAttentionLayer must be an int >= 1. "
                    f"Got {value!r} instead."
                )
        if isinstance(window, bool) or not isinstance(window, int) or window < 0:
            raise ValueError(
                "The 'window' parameter of DispatcherAttentionLayer must be an int >= 0. "
                f"Got {window!r} instead."
            )
        if decay_half_life and (isinstance(decay_half_life, bool) or not decay_half_life >= 2):
            raise ValueError(
                "The 'decay_half_life' parameter of DispatcherAttentionLayer must be 0 (no decay) "
                f"or a number of events >= 2. Got {decay_half_life!r} instead."
            )
        try:
            check_compress(compress_over, route_topk, num_experts)
        except ValueError as err:
            raise ValueError(f"DispatcherAttentionLayer: {err}") from None
        if window and impl == "triton":
            raise ValueError(
                "DispatcherAttentionLayer(impl='triton') has no local window: use impl='fast' "
                f"with window={window}, or window=0."
            )
        if dim % heads:
            raise ValueError(
                f"The 'dim' parameter of DispatcherAttentionLayer ({dim}) must be divisible by "
                f"heads ({heads})."
            )
        if impl not in IMPLS:
            raise ValueError(
                f"The 'impl' parameter of DispatcherAttentionLayer must be one of {IMPLS}. "
                f"Got {impl!r} instead."
            )
        if not _INIT_COMPRESS_SCALE < logit_bound <= MAX_LOGIT_BOUND:
            raise ValueError(
                "The 'logit_bound' parameter of DispatcherAttentionLayer must be in "
                f"({_INIT_COMPRESS_SCALE}, {MAX_LOGIT_BOUND}]. Got {logit_bound!r} instead."
            )
        self.dim, self.heads, self.num_experts, self.chunk = dim, heads, num_experts, chunk
        self.head_dim = dim // heads
        self.window = window
        self.compress_over: CompressOver = compress_over
        self.route_topk = route_topk
        self.impl: Impl = impl
        self.logit_bound = float(logit_bound)
        self.qkv = nn.Linear(dim, 4 * dim)  # q, kc, zk, zv
        self.out = nn.Linear(dim, dim)
        self.expert_q = nn.Parameter(torch.randn(heads, num_experts, self.head_dim))  # (H, k, d)
        ratio = _INIT_COMPRESS_SCALE / self.logit_bound
        self.scale_logit = nn.Parameter(torch.full((heads,), math.log(ratio / (1 - ratio))))
        self.memory_kv = nn.Linear(dim, 2 * dim) if use_memory else None
        self.decay_logit: nn.Parameter | None = None
        if decay_half_life:  # sigmoid(w) = 1 / half-life, so lam = ln2 / half-life
            half = torch.logspace(1.0, math.log2(decay_half_life), num_experts, base=2.0)
            if num_experts == 1:  # one expert takes the longest half-life
                half = torch.tensor([float(decay_half_life)])
            self.decay_logit = nn.Parameter(-torch.log(half - 1).expand(heads, -1).clone())

    def decay_rates(self) -> torch.Tensor | None:
        """(H, k) recency decay per position, ``ln2 * sigmoid(w)`` (half-lives >= 1 event), or None
        without decay."""
        if self.decay_logit is None:
            return None
        return MAX_DECAY * torch.sigmoid(self.decay_logit)

    def _expert_queries(self) -> torch.Tensor:
        """(H, k, d) unit expert queries times the bounded per-head scale g_h < T."""
        g = self.logit_bound * torch.sigmoid(self.scale_logit)  # (H,)
        return F.normalize(self.expert_q, dim=-1) * g[:, None, None]

    def _project(self, x: torch.Tensor, heads_first: bool = False) -> tuple[torch.Tensor, ...]:
        """(..., D) -> q, kc, zk, zv, each (..., H, d); kc unit-norm, q scaled by 1/sqrt(d).

        ``heads_first``: x is (B, L, D) and the four come back as contiguous (B, H, L, d), so the
        chunked path's reshapes are views and backward keeps four (B, H, L, d) tensors instead of
        the whole projection output plus a copy of each chunked view.
        """
        parts = self.qkv(x).unflatten(-1, (4, self.heads, self.head_dim)).unbind(-3)
        if heads_first:
            parts = tuple(t.transpose(1, 2).contiguous() for t in parts)
        q, kc, zk, zv = parts
        return q / math.sqrt(self.head_dim), F.normalize(kc, dim=-1), zk, zv

    def _memory(self, memory: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        """(..., m, D) memory tokens -> keys, values (..., m, H, d), or (None, None)."""
        if memory is None:
            return None, None
        if self.memory_kv is None:
            raise ValueError(
                "memory tokens were given to a DispatcherAttentionLayer built with use_memory=False."
            )
        mk, mv = self.memory_kv(memory).unflatten(-1, (2, self.heads, self.head_dim)).unbind(-3)
        return mk, mv

    def attention_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(B, L, D) -> what :meth:`attend` takes: q (scaled), the expert queries (H, k, d), kc (unit
        rows), zk, zv; the four per-event tensors contiguous (B, H, L, d)."""
        if self.dim != x.shape[-1]:
            raise ValueError(f"x must have width {self.dim}. Got shape {tuple(x.shape)} instead.")
        q, kc, zk, zv = self._project(x, heads_first=True)
        return q, self._expert_queries(), kc, zk, zv

    def attend(
        self,
        q: torch.Tensor,
        expert_q: torch.Tensor,
        kc: torch.Tensor,
        zk: torch.Tensor,
        zv: torch.Tensor,
        valid: torch.Tensor | None = None,
        memory: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor]:
        """The dispatcher attention alone on :meth:`attention_inputs`' tensors, with this layer's
        bound, chunk and path; ``memory`` (B, L, m, D) as in :meth:`forward` -> ((B, H, L, d),),
        before the output projection."""
        mk, mv = self._memory(memory)  # (B, L, m, H, d) each, or None
        if mk is not None and mv is not None:
            mk, mv = mk.permute(0, 3, 1, 2, 4), mv.permute(0, 3, 1, 2, 4)  # (B, H, L, m, d)
        y = dispatcher_attention(
            q, expert_q, kc, zk, zv, valid, logit_bound=self.logit_bound,
            extra_k=mk, extra_v=mv, chunk=self.chunk, impl=self.impl, window=self.window,
            decay=self.decay_rates(), compress_over=self.compress_over,
            route_topk=self.route_topk,
        )  # fmt: skip
        return (y,)

    def forward(
        self,
        x: torch.Tensor,
        valid: torch.Tensor | None = None,
        memory: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, L, D) -> (B, L, D); ``valid`` (B, L) bool (False = padding, output 0 there);
        ``memory`` (B, L, m, D) per-position memory tokens (only with ``use_memory``)."""
        B, L, D = x.shape
        (y,) = self.attend(*self.attention_inputs(x), valid=valid, memory=memory)
        return self.out(y.transpose(1, 2).reshape(B, L, D))

    # -- incremental ----------------------------------------------------------------------------
    def init_state(self, batch: int, device: torch.device | str = "cpu") -> DispatcherState:
        """The empty state (no event yet) for ``batch`` rows."""
        return DispatcherState.zeros(
            batch, self.heads, self.num_experts, self.head_dim, device, window=self.window
        )

    def step(
        self,
        x: torch.Tensor,
        state: DispatcherState,
        valid: torch.Tensor | None = None,
        memory: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, DispatcherState]:
        """One new position per row: x (B, D), valid (B,), memory (B, m, D) -> (B, D), new state.

        Equals the last position of :meth:`forward` over the whole prefix, in O(H (k + W) d) for
        the mixing (plus the projections)."""
        B = x.shape[0]
        q, kc, zk, zv = self._project(x)  # (B, H, d) each
        mk, mv = self._memory(memory)  # (B, m, H, d) or None
        if mk is not None and mv is not None:
            mk, mv = mk.transpose(1, 2), mv.transpose(1, 2)  # (B, H, m, d)
        y, state = dispatcher_step(
            state, q, self._expert_queries(), kc, zk, zv, valid, logit_bound=self.logit_bound,
            extra_k=mk, extra_v=mv, decay=self.decay_rates(), compress_over=self.compress_over,
            route_topk=self.route_topk,
        )  # fmt: skip
        return self.out(y.reshape(B, self.dim)), state
