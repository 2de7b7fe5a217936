"""Where one long-sequence attention sublayer spends its time: a ``torch.profiler`` kernel table.

``benchmarks/longseq_speed.py`` says how long a forward + backward step takes; this says which
kernels and ops make it up, for one method at one length (same layer, batch and dtype as there),
eager or compiled. It is a diagnostic, not a benchmark: it writes a text table (ops sorted by
device time, or CPU time on CPU) and a Chrome trace, and no result file.

    python benchmarks/longseq_profile.py --method ksa --length 16384 --device cuda --out runs/prof
    python benchmarks/longseq_profile.py --method ksa --length 16384 --compile reduce-overhead ...
    python benchmarks/longseq_profile.py --method ksa --length 1024 --tokens 4096 --device cpu
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from longseq_speed import METHODS, OPT_IN, add_sublayer_args, make_step

log = logging.getLogger("benchmarks.longseq_profile")


def profile_layer(args: argparse.Namespace) -> str:
    """Profile ``args.steps`` forward + backward steps after warm-up; returns the op table."""
    device = torch.device(args.device)
    step, B = make_step(args.method, args.length, args, args.compile)

    for _ in range(args.warmup):  # compilation and autotuning happen here
        step()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities, record_shapes=False) as prof:
        for _ in range(args.steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{args.method}-L{args.length}-{args.compile}"
    prof.export_chrome_trace(str(out / f"{stem}.trace.json"))
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=key, row_limit=args.rows)
    header = (
        f"{args.method} L={args.length} B={B} D={args.dim} H={args.heads} {args.compile}, "
        f"{args.steps} steps, device {device}\n"
    )
    (out / f"{stem}.txt").write_text(header + table)
    return header + table


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--method", choices=METHODS + OPT_IN, default="ksa")
    p.add_argument("--length", type=int, default=16384, help="L, events per sequence")
    p.add_argument("--tokens", type=int, default=65536, help="tokens per batch (B = tokens / L)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument(
        "--compile", default="eager", help="eager, or a torch.compile mode (reduce-overhead, ...)"
    )
    add_sublayer_args(p)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--rows", type=int, default=30, help="ops in the table")
    p.add_argument("--out", default="runs/profile", help="folder for the table and the trace")
    args = p.parse_args(argv)
    if args.length < 1 or args.tokens < 1 or args.steps < 1:
        raise SystemExit("--length, --tokens and --steps must be positive ints")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    log.info("\n%s", profile_layer(args))


if __name__ == "__main__":
    main()
