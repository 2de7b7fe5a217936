"""The chunked backward of causal linear dispatcher attention, written out by hand.

A fused GPU kernel for ELASTIC's dispatch (docs/long_sequences.md, "A fused dispatch kernel") has
to compute the backward itself, chunk by chunk, instead of letting autograd replay the chunked
path's dozen matmuls. This file states that backward in plain PyTorch, one chunk axis, no autograd,
and checks it against autograd of :func:`shortlist.ops.dispatcher.dispatcher_attention_chunked`,
so the kernel has a tested reference and the document's formulas cannot drift from the code.

Notation as in ``ops/dispatcher.py``, per (batch, head): positions t and j of one chunk of C,
u_je = exp(clamp(eq_e . kc_j, -T, T) - T), the states before the chunk S_K, S_V (k, d) and S_D
(k,), num = q . S_K + tril(q zk^T) u, den = S_D + cumsum(u), p = softmax_e(num / den), r = p / den,
y = r S_V + tril(r u^T) zv.
"""

from __future__ import annotations

import torch

from shortlist.ops.dispatcher import dispatcher_attention_chunked


def _exclusive(x: torch.Tensor) -> torch.Tensor:
    """Exclusive prefix sum over the chunk axis (dim 0): what every chunk sees before itself."""
    return torch.cat([torch.zeros_like(x[:1]), x.cumsum(0)[:-1]])


def _reverse_exclusive(x: torch.Tensor) -> torch.Tensor:
    """Sum over the later chunks (dim 0): the state gradients that flow back into a chunk."""
    return torch.cat([x.flip(0).cumsum(0).flip(0)[1:], torch.zeros_like(x[:1])])


def chunked_backward(
    q: torch.Tensor,
    eq: torch.Tensor,
    kc: torch.Tensor,
    zk: torch.Tensor,
    zv: torch.Tensor,
    dy: torch.Tensor,
    bound: float,
    chunk: int,
) -> dict[str, torch.Tensor]:
    """Gradients of sum(y * dy) for one (batch, head): q, kc, zk, zv, dy (L, d), eq (k, d).

    Forward recomputed per chunk from the exclusive prefix states; backward: the intra-chunk terms
    with the causal (C, C) mask, the state terms of the chunk itself, then the state gradients of
    all later chunks (reverse exclusive prefix) added to each chunk's u, zk and zv. L % chunk == 0.
    """
    L, d = q.shape
    n, C = L // chunk, chunk
    s = kc @ eq.T  # (L, k)
    u = torch.exp(s.clamp(-bound, bound) - bound)

    def ch(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(n, C, *x.shape[1:])

    qc, zkc, zvc, uc, dyc = ch(q), ch(zk), ch(zv), ch(u), ch(dy)
    m = torch.ones(C, C, dtype=q.dtype).tril()
    sk = _exclusive(torch.einsum("nje,njd->ned", uc, zkc))  # (n, k, d)
    sv = _exclusive(torch.einsum("nje,njd->ned", uc, zvc))
    sd = _exclusive(uc.sum(1))  # (n, k)
    a_qz = torch.einsum("ntd,njd->ntj", qc, zkc) * m  # q_t . zk_j, j <= t
    num = torch.einsum("ntd,ned->nte", qc, sk) + a_qz @ uc
    den = sd[:, None] + uc.cumsum(1)
    p = (num / den).softmax(-1)
    r = p / den
    w = (r @ uc.transpose(1, 2)) * m  # sum_e r_te u_je
    # backward through y = r S_V + tril(r u^T) zv
    g = (dyc @ zvc.transpose(1, 2)) * m  # dy_t . zv_j
    dr = torch.einsum("ntd,ned->nte", dyc, sv) + g @ uc
    d_sv = torch.einsum("nte,ntd->ned", r, dyc)
    dzv = w.transpose(1, 2) @ dyc
    du = g.transpose(1, 2) @ r
    # r = p / den, p = softmax(num / den)
    dp = dr / den
    dden = -dr * p / den**2
    da = p * (dp - (p * dp).sum(-1, keepdim=True))
    dnum = da / den
    dden = dden - da * num / den**2
    # num = q S_K + tril(q zk^T) u ; den = S_D + cumsum(u)
    v = (dnum @ uc.transpose(1, 2)) * m  # sum_e dnum_te u_je
    dq = torch.einsum("nte,ned->ntd", dnum, sk) + v @ zkc
    d_sk = torch.einsum("nte,ntd->ned", dnum, qc)
    dzk = v.transpose(1, 2) @ qc
    du = du + a_qz.transpose(1, 2) @ dnum + m.T @ dden
    d_sd = dden.sum(1)
    # each chunk's u, zk, zv feed the states of every later chunk
    rk, rv, rd = _reverse_exclusive(d_sk), _reverse_exclusive(d_sv), _reverse_exclusive(d_sd)
    dzk = dzk + torch.einsum("nje,ned->njd", uc, rk)
    dzv = dzv + torch.einsum("nje,ned->njd", uc, rv)
    du = du + torch.einsum("njd,ned->nje", zkc, rk) + torch.einsum("njd,ned->nje", zvc, rv)
    du = (du + rd[:, None]).reshape(L, -1)
    ds = du * u * ((s > -bound) & (s < bound))  # through exp and the clamp
    return {
        "q": dq.reshape(L, d),
        "kc": ds @ eq,
        "zk": dzk.reshape(L, d),
        "zv": dzv.reshape(L, d),
        "eq": ds.T @ kc,
    }


def test_hand_written_chunked_backward_matches_autograd() -> None:
    torch.manual_seed(0)
    B, H, L, d, k, C, bound = 2, 2, 48, 8, 4, 16, 3.0
    leaves = {n: torch.randn(B, H, L, d, dtype=torch.float64) for n in ("q", "kc", "zk", "zv")}
    leaves["eq"] = torch.randn(H, k, d, dtype=torch.float64)
    for t in leaves.values():
        t.requires_grad_(True)
    y = dispatcher_attention_chunked(
        leaves["q"], leaves["eq"], leaves["kc"], leaves["zk"], leaves["zv"],
        logit_bound=bound, chunk=C,
    )  # fmt: skip
    dy = torch.randn_like(y)
    y.backward(dy)
    eq_grad = torch.zeros(H, k, d, dtype=torch.float64)
    with torch.no_grad():
        for b in range(B):
            for h in range(H):
                got = chunked_backward(
                    *(leaves[n][b, h] for n in ("q",)), leaves["eq"][h],
                    *(leaves[n][b, h] for n in ("kc", "zk", "zv")), dy[b, h], bound, C,
                )  # fmt: skip
                for name in ("q", "kc", "zk", "zv"):
                    # the chunked path's matmuls take float32 operands for float64 inputs
                    torch.testing.assert_close(
                        got[name], leaves[name].grad[b, h], rtol=1e-4, atol=1e-5
                    )
                eq_grad[h] += got["eq"]
    torch.testing.assert_close(eq_grad, leaves["eq"].grad, rtol=1e-4, atol=1e-5)
    # the clamp is active somewhere, so its mask in the backward is exercised
    s = torch.einsum("bhld,hkd->bhlk", leaves["kc"].detach(), leaves["eq"].detach())
    assert (s.abs() > bound).any() and (s.abs() < bound).any()
