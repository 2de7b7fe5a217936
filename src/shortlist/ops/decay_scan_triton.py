"""The decayed exclusive prefix over chunks as one Triton scan per direction (CUDA, automatic).

Recency decay (``ops/dispatcher.py``, "Recency decay" in docs/long_sequences.md) needs, per
(batch x head, expert), the state at each chunk's start:

    out[c] = sum_{c' < c} a^(c - c') x[c']          x, out: (R, n, k, W), a: (R, k) in (0, 1]

(``x`` the chunks' joint key | value | weight sums, ``a`` = exp(-lam C) the decay per chunk). The
PyTorch form (``dispatcher._decayed_prefix``) writes it as transition matrices in two levels: on
the GPU, at L = 16k, a dozen small kernels forward and backward (permutes, float32 products, the
join), which is what kept the decayed layer's compiled step short of 3x SDPA. Here it is the
recurrence ``out[c] = a (out[c - 1] + x[c - 1])``, one program per (row, expert, block of the last
axis), as ``tl.associative_scan`` over segments of chunks with the running state carried between
segments: x is read once and out written once.

Backward (adjoint of the recurrence): ``gx[c'] = sum_{c > c'} a^(c - c') g[c]``, the same scan
run from the last chunk down, and ``ga = sum_c' gx[c'] . (out[c'] + x[c']) / a`` (``gx[c'] / a``
is the adjoint of ``out[c' + 1] = a (out[c'] + x[c'])``), summed per program and then over programs
in PyTorch, so the result is deterministic (no atomics).

It is a ``torch.library.triton_op``, so ``torch.compile`` keeps it in the graph (no graph break,
CUDA graphs allowed). ``dispatcher.chunk_states`` uses it for CUDA tensors when triton is
importable and :data:`shortlist.ops.dispatcher.DECAY_SCAN` is ``"auto"`` or ``"triton"``;
elsewhere the PyTorch form. ``a`` must be positive (the rate's gradient divides by it): with
``MAX_DECAY`` and ``DECAY_MAX_CHUNK`` it is at least ``2^-64``. Tested against the PyTorch form and
the definition, values and gradients, under Triton's CPU interpreter and compiled on an H200
(``tests/test_decay_scan_triton.py``; speed and profile in docs/long_sequences.md).
"""

from __future__ import annotations

import torch

try:  # an optional dependency: ships with CUDA builds of torch, `pip install triton` elsewhere
    import triton
    import triton.language as tl
    from torch.library import triton_op, wrap_triton
except ImportError:  # pragma: no cover - exercised where triton is absent
    triton = None  # type: ignore[assignment]

BLOCK_N = 64  # chunks per segment of the scan
BLOCK_W = 32  # columns of the last axis per program


def available() -> bool:
    """Whether the Triton scan can be built here (the triton package imports)."""
    return triton is not None


if triton is not None:

    @triton.jit
    def _linear(a1, v1, a2, v2):  # v -> a1 v + v1, then v -> a2 v + v2: composed
        return a1 * a2, v1 * a2 + v2

    @triton.jit
    def _scan_fwd_kernel(x, a, out, N, K: tl.constexpr, W: tl.constexpr,
                         BN: tl.constexpr, BW: tl.constexpr):  # fmt: skip
        pid = tl.program_id(0)  # r * K + e
        cols = tl.program_id(1) * BW + tl.arange(0, BW)
        base = (pid // K) * N * K * W + (pid % K) * W
        ab = tl.load(a + pid)
        step = tl.full((BN, BW), 1.0, tl.float32) * ab
        carry = tl.zeros((BW,), tl.float32)
        for s in range(0, N, BN):
            rows = s + tl.arange(0, BN)
            # out[c] = a (out[c - 1] + x[c - 1]): scan the inputs shifted down by one chunk
            m_in = ((rows >= 1) & (rows <= N))[:, None] & (cols < W)[None, :]
            xs = tl.load(
                x + base + (rows - 1)[:, None] * K * W + cols[None, :], mask=m_in, other=0.0
            )
            pw, v = tl.associative_scan((step, xs * ab), 0, _linear)
            o = v + carry[None, :] * pw  # pw[i] = a^(i + 1): the state before the segment decays
            m_out = (rows < N)[:, None] & (cols < W)[None, :]
            tl.store(out + base + rows[:, None] * K * W + cols[None, :], o, mask=m_out)
            carry = tl.sum(tl.where((rows == s + BN - 1)[:, None], o, 0.0), 0)

    @triton.jit
    def _scan_bwd_kernel(g, x, a, out, gx, ga, N, NW, K: tl.constexpr, W: tl.constexpr,
                         BN: tl.constexpr, BW: tl.constexpr):  # fmt: skip
        pid = tl.program_id(0)
        wb = tl.program_id(1)
        cols = wb * BW + tl.arange(0, BW)
        base = (pid // K) * N * K * W + (pid % K) * W
        ab = tl.load(a + pid)
        step = tl.full((BN, BW), 1.0, tl.float32) * ab
        carry = tl.zeros((BW,), tl.float32)
        acc = tl.zeros((BW,), tl.float32)
        for s in range(0, N, BN):
            t = s + tl.arange(0, BN)  # t-th chunk from the end: c' = N - 1 - t
            c = N - 1 - t
            # gx[c'] = a (gx[c' + 1] + g[c' + 1]): the same scan from the last chunk down
            m_in = (t >= 1) & (t < N)
            gs = tl.load(g + base + (c + 1)[:, None] * K * W + cols[None, :],
                         mask=m_in[:, None] & (cols < W)[None, :], other=0.0)  # fmt: skip
            pw, v = tl.associative_scan((step, gs * ab), 0, _linear)
            gxb = v + carry[None, :] * pw
            m_out = (t < N)[:, None] & (cols < W)[None, :]
            tl.store(gx + base + c[:, None] * K * W + cols[None, :], gxb, mask=m_out)
            ob = tl.load(out + base + c[:, None] * K * W + cols[None, :], mask=m_out, other=0.0)
            xb = tl.load(x + base + c[:, None] * K * W + cols[None, :], mask=m_out, other=0.0)
            acc += tl.sum(gxb * (ob + xb), 0)
            carry = tl.sum(tl.where((t == s + BN - 1)[:, None], gxb, 0.0), 0)
        # d out[c' + 1] / d a = out[c'] + x[c'], and out[c' + 1]'s adjoint is gx[c'] / a: the
        # division by a is left to PyTorch, once per (row, expert)
        tl.store(ga + pid * NW + wb, tl.sum(acc, 0))

    def _grid(x: torch.Tensor) -> tuple[int, int]:
        R, _, K, W = x.shape
        return R * K, triton.cdiv(W, BLOCK_W)

    @triton_op("shortlist::decay_scan", mutates_args=())
    def decay_scan(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """x (R, n, k, W) float32 contiguous, a (R, k) float32 -> out (R, n, k, W) float32,
        ``out[c] = sum_{c' < c} a^(c - c') x[c']``."""
        out = torch.empty_like(x)
        _, N, K, W = x.shape
        wrap_triton(_scan_fwd_kernel)[_grid(x)](x, a, out, N, K, W, BLOCK_N, BLOCK_W)
        return out

    @triton_op("shortlist::decay_scan_backward", mutates_args=())
    def decay_scan_backward(
        g: torch.Tensor, x: torch.Tensor, a: torch.Tensor, out: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (gx (R, n, k, W), per-program sums of gx[c'] . (out[c'] + x[c'])
        (R, k, ceil(W / BLOCK_W)), to be divided by a)."""
        gx = torch.empty_like(g)
        R, N, K, W = g.shape
        grid = _grid(g)
        ga = torch.empty(R, K, grid[1], device=g.device, dtype=torch.float32)
        wrap_triton(_scan_bwd_kernel)[grid](
            g, x, a, out, gx, ga, N, grid[1], K, W, BLOCK_N, BLOCK_W
        )  # fmt: skip
        return gx, ga

    def _setup(ctx: object, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        x, a = inputs
        ctx.save_for_backward(x, a, output)  # type: ignore[attr-defined]

    def _backward(ctx: object, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, a, out = ctx.saved_tensors  # type: ignore[attr-defined]
        gx, ga = decay_scan_backward(g.contiguous(), x, a, out)
        return gx, ga.sum(-1) / a

    decay_scan.register_autograd(_backward, setup_context=_setup)


def decayed_prefix_triton(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``x`` (B, H, n, k, W), ``a`` (H, k) the decay per chunk -> (B, H, n, k, W) float32 with
    ``[c] = sum_{c' < c} a^(c - c') x[c']`` (so ``dispatcher._decayed_prefix(x * a, -log a)``)."""
    if triton is None:
        raise ImportError("the Triton decay scan needs the triton package (pip install triton).")
    B, H, n, k, W = x.shape
    ar = a.float()[None].expand(B, H, k).reshape(B * H, k).contiguous()
    out = decay_scan(x.float().reshape(B * H, n, k, W).contiguous(), ar)
    return out.reshape(B, H, n, k, W)
