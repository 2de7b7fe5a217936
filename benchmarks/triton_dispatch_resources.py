"""Shared memory of ELASTIC's Triton dispatch kernels, compiled ahead of time for a GPU target.

``ops/dispatcher_triton.py`` keeps a chunk's (C, C) tiles on chip; how much shared memory a program
needs decides how many fit an SM. This compiles both kernels (``_fwd_kernel``, ``_bwd_kernel``) for
``--arch`` (default sm_90, the H100/H200) with bf16 inputs at each chunk of ``--chunks``, without a
GPU (Triton ships ``ptxas``), and writes ``triton_dispatch_resources.json`` (``shared_bytes`` per
kernel and chunk). Run it without ``TRITON_INTERPRET``: the interpreter does not compile.

    python benchmarks/triton_dispatch_resources.py                 # -> triton_dispatch_resources.json
    python benchmarks/triton_dispatch_resources.py --dry-run       # print the rows as JSON only
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Row, write_result


def compile_kernels(chunk: int, head_dim: int, experts: int, arch: int) -> dict[str, int]:
    """{kernel name: shared memory bytes} of both dispatch kernels compiled for ``sm_<arch>``."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    import shortlist.ops.dispatcher_triton as kernels

    inputs = {n: "*bf16" for n in ("q", "zk", "zv")} | {n: "*fp32" for n in ("u", "sk", "sv", "sd")}
    shape = {
        "L": "i32",
        "NCH": "i32",
        "C": "constexpr",
        "D": "constexpr",
        "K": "constexpr",
        "PREC": "constexpr",
    }
    grads = {n: "*fp32" for n in ("dq", "dzk", "dzv", "du", "dsk", "dsv", "dsd")}
    shared = {}
    for fn, signature in (
        (kernels._fwd_kernel, inputs | {"y": "*fp32"} | shape),
        (kernels._bwd_kernel, inputs | {"dy": "*fp32"} | grads | shape),
    ):
        source = ASTSource(
            fn=fn,
            signature=signature,
            constexprs={"C": chunk, "D": head_dim, "K": experts, "PREC": "tf32"},  # bf16 inputs
        )
        compiled = triton.compile(
            source, target=GPUTarget("cuda", arch, 32), options={"num_warps": 4}
        )
        shared[fn.__name__] = int(compiled.metadata.shared)
    return shared


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--chunks", default="32,64,128", help="comma-separated chunk lengths C")
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--experts", type=int, default=16)
    p.add_argument("--arch", type=int, default=90, help="compute capability, e.g. 90 = sm_90")
    p.add_argument("--dry-run", action="store_true", help="print the rows, write nothing")
    args = p.parse_args(argv)
    rows = []
    for chunk in (int(c) for c in args.chunks.split(",") if c):
        for name, shared in compile_kernels(chunk, args.head_dim, args.experts, args.arch).items():
            rows.append(
                Row(
                    dataset="-",
                    protocol=f"ahead-of-time compile, sm_{args.arch}, bf16 inputs",
                    model=name,
                    variant=f"C={chunk}, d={args.head_dim}, k={args.experts}",
                    metrics={"shared_bytes": float(shared)},
                )
            )
    if args.dry_run:
        print(json.dumps([r.__dict__ for r in rows]))
        return
    write_result(
        "triton_dispatch_resources",
        rows,
        notes="Shared memory per program of ops/dispatcher_triton.py's kernels (num_warps 4), from "
        "triton.compile for the target without a GPU; an H100/H200 SM has 227 KiB.",
    )


if __name__ == "__main__":
    main()
