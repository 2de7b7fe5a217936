"""The Triton dispatch kernels (``ops/dispatcher_triton.py``) against the chunked PyTorch path.

Without a GPU they run under Triton's interpreter: ``TRITON_INTERPRET=1`` must be set before the
kernels are defined (``triton.jit`` reads it then), so this module sets it before importing them.
Skipped where the triton package is absent.
"""

from __future__ import annotations

import os

import pytest
import torch

if not torch.cuda.is_available():  # on a GPU the compiled kernels are tested
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton", reason="triton is not installed (pip install triton)")

from shortlist.ops.dispatcher import dispatcher_attention, dispatcher_attention_chunked
from shortlist.ops.dispatcher_layer import DispatcherAttentionLayer
from shortlist.ops.dispatcher_triton import dispatcher_attention_triton

DEV = "cuda" if torch.cuda.is_available() else "cpu"  # CPU: the interpreter


def _inputs(L: int, pad_rows: int, seed: int):  # type: ignore[no-untyped-def]
    """(q, kc, zk, zv) (2, 2, L, 16), expert queries (2, 16, 16), valid (2, L) with row 1 padded."""
    torch.manual_seed(seed)
    leaves = [torch.randn(2, 2, L, 16, device=DEV) for _ in range(4)]
    eq = torch.randn(2, 16, 16, device=DEV)
    valid = torch.ones(2, L, dtype=torch.bool, device=DEV)
    valid[1, :pad_rows] = False
    return leaves, eq, valid


def _run(fn, leaves, eq, valid, bound, chunk, decay=None, dy_seed=1):  # type: ignore[no-untyped-def]
    """Output and the gradients of (q, kc, zk, zv, expert_q), and of ``decay`` when given."""
    ts = [t.clone().requires_grad_(True) for t in leaves]
    e = eq.clone().requires_grad_(True)
    extra = {} if decay is None else {"decay": decay.clone().requires_grad_(True)}
    y = fn(ts[0], e, ts[1], ts[2], ts[3], valid, logit_bound=bound, chunk=chunk, **extra)
    dy = torch.randn(y.shape, generator=torch.Generator().manual_seed(dy_seed)).to(y)
    y.backward(dy)
    return y, [t.grad for t in ts] + [e.grad] + [t.grad for t in extra.values()]


def _assert_parity(y, g, y_ref, g_ref, names):  # type: ignore[no-untyped-def]
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-5)
    for name, got, want in zip(names, g, g_ref, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4, msg=name)


@pytest.mark.parametrize(
    ("L", "chunk", "pad_rows"), [(64, 16, 0), (40, 16, 7), (32, 32, 3), (10, 16, 2)]
)
def test_triton_matches_the_chunked_path_forward_and_backward(
    L: int, chunk: int, pad_rows: int
) -> None:
    """Outputs and the gradients of q, kc, zk, zv and the expert queries, with left padding and a
    length that is not a whole number of chunks."""
    leaves, eq, valid = _inputs(L, pad_rows, 0)
    y_ref, g_ref = _run(dispatcher_attention_chunked, leaves, eq, valid, 3.0, chunk)
    y, g = _run(dispatcher_attention_triton, leaves, eq, valid, 3.0, chunk)
    _assert_parity(y, g, y_ref, g_ref, ("q", "kc", "zk", "zv", "expert_q"))
    assert not y[1, :, :pad_rows].any()  # padding outputs zero, as the chunked path


# a padding row's r = p / 2^-126 times a later event's u_b exp(lam b) overflows in (C, C) entries
# that the causal mask then drops (tl.where); the interpreter's numpy warns about them
@pytest.mark.filterwarnings("ignore:overflow encountered in matmul:RuntimeWarning")
@pytest.mark.parametrize(("L", "chunk", "pad_rows"), [(64, 16, 5), (70, 128, 3)])
def test_triton_with_decay_matches_the_chunked_path(L: int, chunk: int, pad_rows: int) -> None:
    """Recency decay through the unchanged kernels: outputs and the gradients of the inputs and of
    the rates, up to the largest rate; a chunk of 128 runs as DECAY_MAX_CHUNK (64)."""
    leaves, eq, valid = _inputs(L, pad_rows, 1)
    rates = torch.rand(2, 16, generator=torch.Generator().manual_seed(2)).to(DEV) * 0.7
    rates[0, 0] = 10.0  # clamped to MAX_DECAY by both paths
    y_ref, g_ref = _run(dispatcher_attention_chunked, leaves, eq, valid, 3.0, chunk, rates, 3)
    y, g = _run(dispatcher_attention_triton, leaves, eq, valid, 3.0, chunk, rates, 3)
    _assert_parity(y, g, y_ref, g_ref, ("q", "kc", "zk", "zv", "expert_q", "decay"))
    assert not y[1, :, :pad_rows].any()
    assert torch.isfinite(torch.cat([x.flatten() for x in g])).all()


def test_triton_layer_with_decay_equals_the_fast_layer() -> None:
    torch.manual_seed(0)
    fast = DispatcherAttentionLayer(32, 2, 16, chunk=16, decay_half_life=64).to(DEV)
    tri = DispatcherAttentionLayer(32, 2, 16, chunk=16, decay_half_life=64, impl="triton").to(DEV)
    tri.load_state_dict(fast.state_dict())
    x = torch.randn(2, 48, 32, device=DEV)
    torch.testing.assert_close(tri(x), fast(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("topk", [0, 1])
def test_triton_layer_with_routing_equals_the_fast_layer(topk: int) -> None:
    """Routing over the experts changes only u, which chunk_states computes: the kernels read it
    unchanged (with recency decay, so the floor of the unrouted weights is exercised)."""
    torch.manual_seed(0)
    kw = {"compress_over": "experts", "route_topk": topk, "decay_half_life": 64}
    fast = DispatcherAttentionLayer(32, 2, 16, chunk=16, **kw).to(DEV)  # type: ignore[arg-type]
    tri = DispatcherAttentionLayer(32, 2, 16, chunk=16, impl="triton", **kw).to(DEV)  # type: ignore[arg-type]
    tri.load_state_dict(fast.state_dict())
    x = torch.randn(2, 48, 32, device=DEV, requires_grad=True)
    y_fast = fast(x)
    (g_fast,) = torch.autograd.grad(y_fast.square().sum(), x)
    y_tri = tri(x)
    (g_tri,) = torch.autograd.grad(y_tri.square().sum(), x)
    torch.testing.assert_close(y_tri, y_fast, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(g_tri, g_fast, rtol=1e-4, atol=1e-4)


def test_triton_is_reached_through_the_layer_and_the_dispatch_point() -> None:
    torch.manual_seed(0)
    fast = DispatcherAttentionLayer(32, heads=2, num_experts=16, chunk=16).to(DEV)
    tri = DispatcherAttentionLayer(32, heads=2, num_experts=16, chunk=16, impl="triton").to(DEV)
    tri.load_state_dict(fast.state_dict())
    x = torch.randn(2, 48, 32, device=DEV)
    torch.testing.assert_close(tri(x), fast(x), rtol=1e-4, atol=1e-5)
    q, eq, kc, zk, zv = (t.detach() for t in fast.attention_inputs(x))
    torch.testing.assert_close(
        dispatcher_attention(q, eq, kc, zk, zv, chunk=16, impl="triton"),
        dispatcher_attention(q, eq, kc, zk, zv, chunk=16, impl="fast"),
        rtol=1e-4,
        atol=1e-5,
    )


def test_triton_refuses_what_it_does_not_cover() -> None:
    q = torch.randn(1, 1, 32, 16, device=DEV)
    eq = torch.randn(1, 16, 16, device=DEV)
    with pytest.raises(ValueError, match=r"the chunk to be a power of 2 >= 16.*Got 8"):
        dispatcher_attention_triton(q, eq, q, q, q, chunk=8)
    with pytest.raises(ValueError, match=r"the experts to be a power of 2 >= 16.*Got 4"):
        dispatcher_attention_triton(q, eq[:, :4], q, q, q, chunk=16)
    extra = torch.randn(1, 1, 32, 2, 16, device=DEV)
    with pytest.raises(ValueError, match=r"no extra \(memory\) tokens"):
        dispatcher_attention_triton(q, eq, q, q, q, extra_k=extra, extra_v=extra, chunk=16)


@pytest.mark.skipif(DEV == "cuda", reason="the refusal concerns CPU tensors")
def test_triton_needs_cuda_outside_the_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    q = torch.randn(1, 1, 32, 16)
    with pytest.raises(ValueError, match=r"runs on CUDA tensors"):
        dispatcher_attention_triton(q, torch.randn(1, 16, 16), q, q, q, chunk=16)


def test_kernels_compile_for_hopper_without_a_gpu() -> None:
    """The interpreter accepts what compiled Triton refuses (a plain global, say): compile both
    kernels ahead of time for sm_90 (bf16 inputs, C = d = 64, k = 16) in a process without it,
    through ``benchmarks/triton_dispatch_resources.py``."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "triton_dispatch_resources.py"
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run(
        [sys.executable, str(script), "--chunks", "64", "--dry-run"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    if out.returncode and "ptxas" in out.stderr.lower():
        pytest.skip(f"no ptxas for an ahead-of-time compile: {out.stderr.strip()[-200:]}")
    assert out.returncode == 0, out.stderr[-2000:]
    rows = json.loads(out.stdout.strip().splitlines()[-1])
    assert {r["model"] for r in rows} == {"_fwd_kernel", "_bwd_kernel"}
    assert all(0 < r["metrics"]["shared_bytes"] <= 227 * 1024 for r in rows)  # fits an H200 SM


def test_dot_precision_follows_the_inputs_and_torch_setting() -> None:
    from shortlist.ops.dispatcher_triton import _dot_precision

    assert _dot_precision(torch.float32) == "ieee"  # torch's default "highest"
    assert _dot_precision(torch.bfloat16) == "tf32"
    old = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("high")
        assert _dot_precision(torch.float32) == "tf32"
    finally:
        torch.set_float32_matmul_precision(old)


@pytest.mark.skipif(DEV != "cuda", reason="the benchmark's shapes are for the compiled kernels")
@pytest.mark.parametrize("chunk", [32, 64])
def test_triton_matches_at_the_benchmark_shape_on_cuda(chunk: int) -> None:
    """The speed table's sublayer (d = 256, 4 heads of 64, 16 experts), L = 4096 with ragged
    padding: float32 exactly (ieee dots), bfloat16 inputs within the chunked path's own bf16
    error against float32."""
    torch.manual_seed(0)
    B, H, L, d, k, bound = 2, 4, 4096, 64, 16, 16.0
    leaves = [torch.randn(B, H, L, d, device=DEV) * 0.3 for _ in range(4)]
    eq = torch.randn(H, k, d, device=DEV) * 0.3
    valid = torch.ones(B, L, dtype=torch.bool, device=DEV)
    valid[1, :1000] = False
    y_ref, g_ref = _run(dispatcher_attention_chunked, leaves, eq, valid, bound, chunk)
    y, g = _run(dispatcher_attention_triton, leaves, eq, valid, bound, chunk)
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-4)
    for name, got, want in zip(("q", "kc", "zk", "zv", "expert_q"), g, g_ref, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-3, msg=name)
    bf = [t.bfloat16() for t in leaves]
    y_tb, _ = _run(dispatcher_attention_triton, bf, eq.bfloat16(), valid, bound, chunk)
    y_cb, _ = _run(dispatcher_attention_chunked, bf, eq.bfloat16(), valid, bound, chunk)
    err_t = (y_tb.float() - y_ref).abs().max().item()
    err_c = (y_cb.float() - y_ref).abs().max().item()
    assert err_t <= 2 * err_c + 1e-3, (err_t, err_c)


def test_a_chunk_too_large_for_the_gpu_is_an_error_naming_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Triton's out-of-resource error at launch (what C = 128 gives on an H200) names the chunk."""
    from triton.runtime.errors import OutOfResources

    import shortlist.ops.dispatcher_triton as dt

    class TooLarge:
        __name__ = "_fwd_kernel"

        def __getitem__(self, grid: object):  # type: ignore[no-untyped-def]
            def launch(*args: object) -> None:
                raise OutOfResources(262144, 232448, "shared memory")

            return launch

    monkeypatch.setattr(dt, "_fwd_kernel", TooLarge())
    q = torch.randn(1, 1, 32, 16, device=DEV)
    with pytest.raises(ValueError, match=r"_fwd_kernel at chunk=16 does not fit this GPU.*"
                       r"shared memory.*smaller chunk \(32 or 64\)"):  # fmt: skip
        dispatcher_attention_triton(q, torch.randn(1, 16, 16, device=DEV), q, q, q, chunk=16)
