"""The Triton scan of the decayed chunk-level state (``ops/decay_scan_triton.py``) against its
definition and against PyTorch's transitions (``dispatcher._decayed_prefix``), values and
gradients, and the dispatch point's choice between them (``dispatcher.DECAY_SCAN``).

Without a GPU the kernels run under Triton's interpreter, which must be set before they are
defined (as in ``test_dispatcher_triton.py``). Skipped where the triton package is absent.
"""

from __future__ import annotations

import os

import pytest
import torch

if not torch.cuda.is_available():  # on a GPU the compiled kernels are tested
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton", reason="triton is not installed (pip install triton)")

from shortlist.ops import dispatcher
from shortlist.ops.decay_scan_triton import BLOCK_N, BLOCK_W, decayed_prefix_triton
from shortlist.ops.dispatcher import (
    DECAY_MAX_CHUNK,
    MAX_DECAY,
    _decayed_prefix,
    _triton_scan,
    dispatcher_attention_chunked,
)

DEV = "cuda" if torch.cuda.is_available() else "cpu"  # CPU: the interpreter


def _definition(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """out[c] = sum_{c' < c} a^(c - c') x[c'], written out in float64. x (B, H, n, k, W), a (H, k)."""
    x64, a64 = x.double(), a.double()
    out = torch.zeros_like(x64)
    for c in range(1, x.shape[2]):
        for cp in range(c):
            out[:, :, c] += a64[None, :, :, None] ** (c - cp) * x64[:, :, cp]
    return out


@pytest.mark.parametrize(
    ("shape", "max_rate"),
    [
        ((2, 1, 5, 3, 7), 3.0),  # fewer chunks than a segment, a partial column block
        ((1, 1, BLOCK_N * 2 + 2, 1, BLOCK_W + 8), 1.0),  # three segments: the carry between them
        ((1, 1, 70, 2, 16), MAX_DECAY * DECAY_MAX_CHUNK),  # the largest decay per chunk
    ],
)
def test_scan_matches_the_definition_and_the_transitions(
    shape: tuple[int, ...], max_rate: float
) -> None:
    """Values against the float64 definition; gradients of x and of the rates against PyTorch's
    transitions (``_decayed_prefix(x a, lam)`` is the same map)."""
    torch.manual_seed(0)
    H, k = shape[1], shape[3]
    x = torch.randn(shape, device=DEV).requires_grad_(True)
    lam = (torch.rand(H, k, device=DEV) * max_rate).requires_grad_(True)
    out = decayed_prefix_triton(x, torch.exp(-lam))
    assert out.shape == shape and out.dtype == torch.float32
    torch.testing.assert_close(
        out.double(), _definition(x.detach(), torch.exp(-lam.detach())), rtol=1e-5, atol=1e-5
    )
    ref = _decayed_prefix(x * torch.exp(-lam)[None, :, None, :, None], lam)
    g = torch.randn(shape, generator=torch.Generator().manual_seed(1)).to(DEV)
    gx, glam = torch.autograd.grad(out, (x, lam), g)
    rx, rlam = torch.autograd.grad(ref, (x, lam), g)
    torch.testing.assert_close(gx, rx, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(glam, rlam, rtol=1e-4, atol=1e-4)


def test_first_chunk_starts_empty_and_one_chunk_decays_by_a() -> None:
    """By hand: x = 1 everywhere, a = 1/2 -> out = [0, 1/2, 1/2 + 1/4, ...]."""
    x = torch.ones(1, 1, 4, 1, 3, device=DEV)
    out = decayed_prefix_triton(x, torch.full((1, 1), 0.5, device=DEV))
    want = torch.tensor([0.0, 0.5, 0.75, 0.875], device=DEV)
    torch.testing.assert_close(out[0, 0, :, 0, :], want[:, None].expand(4, 3))


def test_decayed_dispatch_with_the_scan_equals_the_transitions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The whole chunked path with recency decay, its output and the gradients of every input
    (the rates' included), with the chunk-level state from the scan and from the transitions
    (L = 150, chunks of 16: 10 chunks; left padding on one row)."""
    torch.manual_seed(2)
    L, H, k, d = 150, 1, 2, 8
    leaves = [torch.randn(2, H, L, d, device=DEV) for _ in range(4)]
    eq = torch.randn(H, k, d, device=DEV)
    decay = torch.randn(H, k, device=DEV)
    valid = torch.ones(2, L, dtype=torch.bool, device=DEV)
    valid[1, :7] = False
    dy = torch.randn(2, H, L, d, generator=torch.Generator().manual_seed(3)).to(DEV)

    def run(scan: str) -> list[torch.Tensor]:
        monkeypatch.setattr(dispatcher, "DECAY_SCAN", scan)
        ts = [t.clone().requires_grad_(True) for t in (*leaves, eq, decay)]
        q, kc, zk, zv, e, dec = ts
        y = dispatcher_attention_chunked(q, e, kc, zk, zv, valid, chunk=16, decay=dec)
        y.backward(dy)
        return [y.detach()] + [t.grad for t in ts]

    got, want = run("triton"), run("torch")
    names = ["y", "q", "kc", "zk", "zv", "expert_q", "decay"]
    for name, a, b in zip(names, got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)


def test_the_dispatch_point_chooses_and_explains(monkeypatch: pytest.MonkeyPatch) -> None:
    """'auto' runs the scan only on CUDA; 'torch' never; an unknown setting and 'triton' outside
    CUDA and the interpreter are errors that say what to use."""
    x = torch.zeros(1, 1, 2, 1, 1)
    monkeypatch.setattr(dispatcher, "DECAY_SCAN", "auto")
    assert _triton_scan(x) is False
    monkeypatch.setattr(dispatcher, "DECAY_SCAN", "torch")
    assert _triton_scan(x) is False
    monkeypatch.setattr(dispatcher, "DECAY_SCAN", "fused")
    with pytest.raises(
        ValueError, match=r"DECAY_SCAN must be one of \('auto', 'torch', 'triton'\)"
    ):
        _triton_scan(x)
    monkeypatch.setattr(dispatcher, "DECAY_SCAN", "triton")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match=r"runs on CUDA tensors.*Use 'auto' or 'torch'"):
        _triton_scan(x)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch.compile of a Triton op needs CUDA")
def test_the_scan_compiles_in_one_graph_with_the_same_values_and_gradients() -> None:
    """``torch.compile(fullgraph=True)`` keeps the op in the graph (a graph break would raise), and
    the compiled forward and backward equal eager's."""
    torch.manual_seed(4)
    x = torch.randn(2, 2, 300, 4, 129, device="cuda").requires_grad_(True)
    lam = torch.rand(2, 4, device="cuda").requires_grad_(True)

    def f(x: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
        return decayed_prefix_triton(x, torch.exp(-lam))

    g = torch.randn(x.shape, device="cuda")
    eager = f(x, lam)
    ge = torch.autograd.grad(eager, (x, lam), g)
    compiled = torch.compile(f, fullgraph=True)(x, lam)
    gc = torch.autograd.grad(compiled, (x, lam), g)
    torch.testing.assert_close(compiled, eager)
    for a, b in zip(gc, ge, strict=True):
        torch.testing.assert_close(a, b)
