"""Diagnostic: KSA's FlexAttention step at one length under candidate Triton tile settings.

``ops/ksa_flex.flex_kernel_options`` gives the kernel's tile sizes (None: Inductor's defaults). This
times the same sublayer step as ``benchmarks/longseq_speed.py`` (forward + backward, compiled
``reduce-overhead``) once per candidate, each in a fresh process with its own time limit (a
candidate that fails to lower costs its limit only), and logs one line per candidate with its time
and its ratio to SDPA's step timed in the same run. It writes no result file: the winner becomes
the default and ``longseq_speed.json`` is re-timed with it.

    python benchmarks/flex_tiles.py --length 16384 --out runs/tiles
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

log = logging.getLogger("benchmarks.flex_tiles")

# name -> (summary span, kernel_options): queries per summary copy (ops/ksa_flex.py; 10**9: one
# copy), tiles (forward BLOCK_M x BLOCK_N; backward: M1/N1 for dK/dV, M2/N2 for dQ; None: defaults)
_B64 = {"bwd_BLOCK_M1": 64, "bwd_BLOCK_N1": 64, "bwd_BLOCK_M2": 64, "bwd_BLOCK_N2": 64}
_B128W8 = {
    "bwd_BLOCK_M1": 64, "bwd_BLOCK_N1": 128, "bwd_BLOCK_M2": 128, "bwd_BLOCK_N2": 64,
    "bwd_num_warps": 8, "bwd_num_stages": 3,
}  # fmt: skip
CANDIDATES: dict[str, tuple[int, dict[str, Any] | None]] = {
    "one-copy": (10**9, None),
    "span2048": (2048, None),
    "span1024": (1024, None),
    "span4096": (4096, None),
    "span2048-bwd64": (2048, _B64),
    "span2048-bwd-w8": (2048, _B128W8),
}


def run_one(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Child process: time one candidate (or ``sdpa``); returns the longseq_speed case dict."""
    import torch

    import shortlist.ops.ksa_flex as kf
    from longseq_speed import time_case

    span = 2048
    if name != "sdpa":
        span, options = CANDIDATES[name]
        kf.flex_kernel_options = lambda block_size: options  # type: ignore[assignment]
    ns = argparse.Namespace(
        device=args.device, tokens=args.tokens, dim=256, heads=4, chunk=args.chunk, window=args.window,
        ksa_block=128, ksa_span=span, experts=16, elastic_chunk=128, warmup=3, repeats=args.repeats,
    )  # fmt: skip
    torch.manual_seed(0)
    return time_case("sdpa" if name == "sdpa" else "ksa", args.length, ns, mode="reduce-overhead")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--length", type=int, default=16384)
    p.add_argument("--tokens", type=int, default=65536)
    p.add_argument("--chunk", type=int, default=64)
    p.add_argument("--window", type=int, default=4)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--timeout", type=int, default=120, help="seconds per candidate")
    p.add_argument("--device", default="cuda")
    p.add_argument("--only", default="", help="comma-separated candidate names (default: all)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.child:
        print(json.dumps(run_one(args.child, args)))
        return
    names = ["sdpa", *(args.only.split(",") if args.only else CANDIDATES)]
    sdpa_s = None
    for name in names:
        cmd = [sys.executable, __file__, "--child", name, "--length", str(args.length),
               "--tokens", str(args.tokens), "--chunk", str(args.chunk),
               "--window", str(args.window), "--repeats", str(args.repeats),
               "--device", args.device]  # fmt: skip
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            log.info("%-18s timed out after %d s", name, args.timeout)
            continue
        if out.returncode != 0:
            err = [x for x in out.stderr.strip().splitlines() if "Error" in x or "error" in x]
            log.info("%-18s failed: %s", name, " | ".join(err[-4:])[:1500] or out.stderr[-1500:])
            continue
        res = json.loads(out.stdout.strip().splitlines()[-1])
        if name == "sdpa":
            sdpa_s = res["fwd_bwd_s"]
        ratio = sdpa_s / res["fwd_bwd_s"] if sdpa_s else float("nan")
        log.info(
            "%-18s L=%d %.3f ms  %.2fx sdpa  (warm-up %.0f s)",
            name, args.length, 1e3 * res["fwd_bwd_s"], ratio, res["warmup_s"],
        )  # fmt: skip


if __name__ == "__main__":
    main()
