"""Causal linear dispatcher attention with one Triton kernel per chunk and direction (opt-in).

The chunked path of ``ops/dispatcher.py`` runs a dozen matmuls and masked (C, C) tensors per chunk,
each written to memory and read back, forward and again in autograd's backward; at L = 16k that
work, not the attention's arithmetic, bounds ELASTIC's step (docs/long_sequences.md, "A fused
dispatch kernel"). Here the per-chunk work is one program per (batch x head, chunk):

- PyTorch computes what is small, with the chunked path's own code (``ops/dispatcher.chunk_states``):
  the clamped compress logits and u (B, H, L, k), ``exp(s - T)`` or, with ``compress_over="experts"``,
  ``softmax_e(s)``, and the states before each chunk, S_K, S_V (B, H, n, k, d) and S_D (B, H, n, k),
  as exclusive prefix sums of per-chunk sums (so autograd carries their gradients back to earlier
  chunks);
- :class:`_ChunkDispatch` runs the rest inside a chunk, forward and backward, in float32, from
  (q, zk, zv, u, S_K, S_V, S_D); its backward is the one written out and tested against autograd
  in ``tests/test_dispatcher_backward_math.py``.

Status: opt-in (``impl="triton"``), never chosen by ``"fast"``; checked against the chunked path
under Triton's CPU interpreter (``TRITON_INTERPRET=1``) and compiled on an H200
(``tests/test_dispatcher_triton.py``, recency decay included). On the
H200 at L = 16k it makes the eager step faster and the compiled step no faster than the compiled
chunked path (docs/long_sequences.md). Recency decay changes only what ``chunk_states`` computes
(u and the states), not the kernels. Limits: no extra (memory) tokens, no local window; C, d and k
powers of 2 >= 16 (``tl.dot``); C <= 64 at d = 64 (shared memory,
``benchmarks/triton_dispatch_resources.py``).
"""

from __future__ import annotations

import os

import torch

from shortlist.ops.dispatcher import CompressOver, _check_inputs, chunk_states, decayed_chunk

try:  # an optional dependency: ships with CUDA builds of torch, `pip install triton` elsewhere
    import triton
    import triton.language as tl
    from triton.runtime.errors import OutOfResources
except ImportError:  # pragma: no cover - exercised where triton is absent
    triton = None  # type: ignore[assignment]

# float32's smallest normal, exactly: only padding rows have a zero denominator. Triton types a
# Python float constant float32 only inside float32's normal range, so a rounded 1.17549435e-38
# would be float64 and turn every product with it into a float64 tl.dot operand (Triton 3.6).
TINY = 2.0**-126


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


if triton is not None:
    # compiled kernels may read a global only as a constexpr (the interpreter would accept any)
    _TINY = tl.constexpr(TINY)

    @triton.jit
    def _mm(a, b, PREC: tl.constexpr):  # tl.dot at the precision chosen by _dot_precision
        return tl.dot(a, b, input_precision=PREC)

    @triton.jit
    def _load_chunk(q, zk, zv, u, sk, sv, sd, row, st, D: tl.constexpr, K: tl.constexpr):
        dd = tl.arange(0, D)
        e = tl.arange(0, K)
        qb = tl.load(q + row[:, None] * D + dd[None, :]).to(tl.float32)
        zkb = tl.load(zk + row[:, None] * D + dd[None, :]).to(tl.float32)
        zvb = tl.load(zv + row[:, None] * D + dd[None, :]).to(tl.float32)
        ub = tl.load(u + row[:, None] * K + e[None, :])
        skb = tl.load(sk + st * K * D + e[:, None] * D + dd[None, :])
        svb = tl.load(sv + st * K * D + e[:, None] * D + dd[None, :])
        sdb = tl.load(sd + st * K + e)
        return qb, zkb, zvb, ub, skb, svb, sdb

    @triton.jit
    def _chunk_forward(qb, zkb, ub, skb, sdb, causal, PREC: tl.constexpr):
        a_qz = tl.where(causal, _mm(qb, tl.trans(zkb), PREC), 0.0)  # (C, C): q_t . zk_j, j <= t
        num = _mm(qb, tl.trans(skb), PREC) + _mm(a_qz, ub, PREC)  # (C, K)
        den = tl.maximum(sdb[None, :] + tl.cumsum(ub, 0), _TINY)
        a = num / den
        ex = tl.exp(a - tl.max(a, 1)[:, None])
        p = ex / tl.sum(ex, 1)[:, None]
        return a_qz, num, den, p, p / den

    @triton.jit
    def _fwd_kernel(q, zk, zv, u, sk, sv, sd, y, L, NCH,
                    C: tl.constexpr, D: tl.constexpr, K: tl.constexpr, PREC: tl.constexpr):  # fmt: skip
        bh = tl.program_id(0)
        c = tl.program_id(1)
        t = tl.arange(0, C)
        row = bh * L + c * C + t
        qb, zkb, zvb, ub, skb, svb, sdb = _load_chunk(
            q, zk, zv, u, sk, sv, sd, row, bh * NCH + c, D, K
        )
        causal = t[:, None] >= t[None, :]
        _, _, _, _, r = _chunk_forward(qb, zkb, ub, skb, sdb, causal, PREC)
        w = tl.where(causal, _mm(r, tl.trans(ub), PREC), 0.0)  # sum_e r_te u_je
        yb = _mm(r, svb, PREC) + _mm(w, zvb, PREC)
        tl.store(y + row[:, None] * D + tl.arange(0, D)[None, :], yb)

    @triton.jit
    def _bwd_kernel(q, zk, zv, u, sk, sv, sd, dy, dq, dzk, dzv, du, dsk, dsv, dsd, L, NCH,
                    C: tl.constexpr, D: tl.constexpr, K: tl.constexpr, PREC: tl.constexpr):  # fmt: skip
        bh = tl.program_id(0)
        c = tl.program_id(1)
        t = tl.arange(0, C)
        dd = tl.arange(0, D)
        e = tl.arange(0, K)
        row = bh * L + c * C + t
        st = bh * NCH + c
        qb, zkb, zvb, ub, skb, svb, sdb = _load_chunk(q, zk, zv, u, sk, sv, sd, row, st, D, K)
        dyb = tl.load(dy + row[:, None] * D + dd[None, :]).to(tl.float32)
        causal = t[:, None] >= t[None, :]
        a_qz, num, den, p, r = _chunk_forward(qb, zkb, ub, skb, sdb, causal, PREC)
        w = tl.where(causal, _mm(r, tl.trans(ub), PREC), 0.0)
        # y = r S_V + tril(r u^T) zv
        g = tl.where(causal, _mm(dyb, tl.trans(zvb), PREC), 0.0)  # dy_t . zv_j
        dr = _mm(dyb, tl.trans(svb), PREC) + _mm(g, ub, PREC)
        dsv_b = _mm(tl.trans(r), dyb, PREC)
        dzv_b = _mm(tl.trans(w), dyb, PREC)
        du_b = _mm(tl.trans(g), r, PREC)
        # r = p / den, p = softmax(num / den)
        dp = dr / den
        da = p * (dp - tl.sum(p * dp, 1)[:, None])
        dnum = da / den
        dden = -((dr * p + da * num) / den) / den  # den * den underflows at padding (den = _TINY)
        # num = q S_K + tril(q zk^T) u, den = S_D + cumsum(u)
        v = tl.where(causal, _mm(dnum, tl.trans(ub), PREC), 0.0)  # sum_e dnum_te u_je
        dq_b = _mm(dnum, skb, PREC) + _mm(v, zkb, PREC)
        dsk_b = _mm(tl.trans(dnum), qb, PREC)
        dzk_b = _mm(tl.trans(v), qb, PREC)
        # sum over t >= j of dden_t, as a reverse scan: the chunk's total minus a prefix cancels
        # where dden spans many orders of magnitude (recency decay's u_b exp(lam b))
        rev = tl.cumsum(dden, 0, reverse=True)
        du_b += _mm(tl.trans(a_qz), dnum, PREC) + rev
        tl.store(dq + row[:, None] * D + dd[None, :], dq_b)
        tl.store(dzk + row[:, None] * D + dd[None, :], dzk_b)
        tl.store(dzv + row[:, None] * D + dd[None, :], dzv_b)
        tl.store(du + row[:, None] * K + e[None, :], du_b)
        tl.store(dsk + st * K * D + e[:, None] * D + dd[None, :], dsk_b)
        tl.store(dsv + st * K * D + e[:, None] * D + dd[None, :], dsv_b)
        tl.store(dsd + st * K + e, tl.sum(dden, 0))


def _dot_precision(dtype: torch.dtype) -> str:
    """The kernels' ``tl.dot`` precision: exact float32 ("ieee") for float32/64 inputs while torch's
    float32 matmul precision is "highest" (its default, which the chunked path then follows), else
    TF32, which keeps more than the 8 mantissa bits of bfloat16 inputs."""
    exact = dtype in (torch.float32, torch.float64)
    return "ieee" if exact and torch.get_float32_matmul_precision() == "highest" else "tf32"


def _launch(kernel: object, grid: tuple[int, int], chunk: int, *args: object) -> None:
    """``kernel[grid](*args)``, with Triton's out-of-resource error turned into one that says
    which setting to change (shared memory grows with the chunk: at d = 64 the backward kernel
    needs 132 KiB at C = 64 and 256 KiB at C = 128, over an H100/H200 SM's 227 KiB;
    ``benchmarks/triton_dispatch_resources.py``)."""
    try:
        kernel[grid](*args)  # type: ignore[index]
    except OutOfResources as err:
        name = getattr(kernel, "__name__", "the kernel")
        raise ValueError(
            f"impl='triton': {name} at chunk={chunk} does not fit this GPU ({err}). "
            "Use a smaller chunk (32 or 64) or impl='fast'."
        ) from err


class _ChunkDispatch(torch.autograd.Function):
    """(q, zk, zv) (B, H, L, d), u (B, H, L, k), S_K, S_V (B, H, n, k, d), S_D (B, H, n, k), L = n C
    -> y (B, H, L, d) float32: the dispatch inside each chunk from the states before it."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        q: torch.Tensor,
        zk: torch.Tensor,
        zv: torch.Tensor,
        u: torch.Tensor,
        sk: torch.Tensor,
        sv: torch.Tensor,
        sd: torch.Tensor,
        chunk: int,
    ) -> torch.Tensor:
        B, H, L, D = q.shape
        K, n = u.shape[-1], L // chunk
        y = torch.empty(B, H, L, D, device=q.device, dtype=torch.float32)
        prec = _dot_precision(q.dtype)
        _launch(
            _fwd_kernel, (B * H, n), chunk, q, zk, zv, u, sk, sv, sd, y, L, n, chunk, D, K, prec
        )
        ctx.save_for_backward(q, zk, zv, u, sk, sv, sd)
        ctx.chunk, ctx.prec = chunk, prec  # type: ignore[attr-defined]
        return y

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, dy: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        q, zk, zv, u, sk, sv, sd = ctx.saved_tensors  # type: ignore[attr-defined]
        chunk, prec = ctx.chunk, ctx.prec  # type: ignore[attr-defined]  # the forward's precision
        B, H, L, D = q.shape
        K, n = u.shape[-1], L // chunk
        f32 = {"device": q.device, "dtype": torch.float32}
        dq, dzk, dzv = (torch.empty(B, H, L, D, **f32) for _ in range(3))
        du = torch.empty(B, H, L, K, **f32)
        dsk, dsv = torch.empty(B, H, n, K, D, **f32), torch.empty(B, H, n, K, D, **f32)
        dsd = torch.empty(B, H, n, K, **f32)
        _launch(
            _bwd_kernel, (B * H, n), chunk,
            q, zk, zv, u, sk, sv, sd, dy.contiguous(), dq, dzk, dzv, du, dsk, dsv, dsd,
            L, n, chunk, D, K, prec,
        )  # fmt: skip
        return dq.to(q.dtype), dzk.to(zk.dtype), dzv.to(zv.dtype), du, dsk, dsv, dsd, None


def check_triton_shapes(head_dim: int, experts: int, chunk: int) -> None:
    """The kernels tile whole chunks with ``tl.dot``: C, d and k powers of 2 >= 16."""
    for name, value in (("chunk", chunk), ("head width", head_dim), ("experts", experts)):
        if value < 16 or value & (value - 1):
            raise ValueError(
                f"impl='triton' needs the {name} to be a power of 2 >= 16 (tl.dot tiles). "
                f"Got {value}; use impl='fast'."
            )


def dispatcher_attention_triton(
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
    decay: torch.Tensor | None = None,
    compress_over: CompressOver = "events",
    route_topk: int = 0,
) -> torch.Tensor:
    """Same arguments and result as ``dispatcher_attention_chunked`` (module docstring for the
    split of work), without extra tokens or a local window. Runs on CUDA, or on CPU under
    ``TRITON_INTERPRET=1``. With recency decay ``decay`` (H, k) the kernels are unchanged:
    ``chunk_states`` rescales u and decays the states, so the formulas inside a chunk are the
    undecayed ones (``ops/dispatcher.ChunkStates``); chunks are then ``decayed_chunk`` long.
    ``compress_over`` and ``route_topk`` change only u, which ``chunk_states`` computes: the
    kernels read it unchanged."""
    _check_inputs(
        q, expert_q, kc, zk, zv, valid, extra_k, extra_v, logit_bound, 0, decay, compress_over,
        route_topk,
    )  # fmt: skip
    if triton is None:
        raise ImportError("impl='triton' needs the triton package (pip install triton).")
    if extra_k is not None:
        raise ValueError("impl='triton' has no extra (memory) tokens: use impl='fast'.")
    if not q.is_cuda and not _interpreting():
        raise ValueError(
            "impl='triton' runs on CUDA tensors (on CPU only under TRITON_INTERPRET=1, for "
            "tests). Use impl='fast'."
        )
    B, H, L, d = q.shape
    chunk = decayed_chunk(chunk, decay)  # the kernels tile the chunks chunk_states cuts
    check_triton_shapes(d, expert_q.shape[-2], chunk)
    if valid is None:
        valid = torch.ones(B, L, dtype=torch.bool, device=q.device)
    ch = chunk_states(
        q, expert_q, kc, zk, zv, valid, logit_bound, chunk, whole_chunk=True, decay=decay,
        compress_over=compress_over, route_topk=route_topk,
    )  # fmt: skip

    def flat(x: torch.Tensor) -> torch.Tensor:  # (B, H, n, C, *) -> contiguous (B, H, n C, *)
        return x.reshape(B, H, -1, x.shape[-1]).contiguous()

    y = _ChunkDispatch.apply(
        flat(ch.q), flat(ch.zk), flat(ch.zv), flat(ch.u),
        ch.sk.contiguous(), ch.sv.contiguous(), ch.sd.contiguous(), chunk,
    )  # fmt: skip
    return (y[:, :, ch.pad :] * valid[:, None, :, None]).to(q.dtype)
