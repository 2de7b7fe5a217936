"""Where a profiled step's wall time goes: GPU busy time against the span of the steps.

Reads the Chrome traces that ``benchmarks/longseq_profile.py`` writes (``<method>-L<L>-<mode>
.trace.json``, with the ``.txt`` table beside it naming the number of steps) and writes one row
per trace to ``benchmarks/results/<name>.json``:

- ``gpu_busy_ms_per_step``: the union of the GPU's kernel and memset intervals, per step;
- ``gpu_kernel_ms_per_step``: the sum of their durations (above the union when streams overlap);
- ``span_ms_per_step``: first GPU or host event to last GPU event of the profiled steps, per step;
- ``gpu_idle_fraction``: 1 - busy / span;
- with ``--kernels a,b``: ``kernel_ms_per_step:a``, the summed duration per step of the GPU kernels
  whose name contains ``a`` (e.g. ``_scan_fwd`` for the decayed state's Triton scan).

The span includes the profiler's own host overhead, so it is longer than an unprofiled step; the
GPU figures are not inflated. A large idle fraction means the host, not the GPU, sets the pace.

    python benchmarks/profile_summary.py --traces runs/prof --name longseq_profile_16k
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Row, write_result

log = logging.getLogger("benchmarks.profile_summary")
GPU_CATS = ("kernel", "gpu_memset", "gpu_memcpy")
HOST_CATS = ("cpu_op", "cuda_runtime")


def busy_time(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of ``(start, end)`` intervals."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def summarize(trace: Path, kernels: tuple[str, ...] = ()) -> dict[str, float]:
    """The row's metrics for one trace (times in the trace are microseconds); ``kernels``: name
    fragments whose kernels' summed time per step is reported too."""
    table = trace.with_name(trace.name.removesuffix(".trace.json") + ".txt")
    match = re.search(r"(\d+) steps", table.read_text()) if table.exists() else None
    if match is None:
        raise ValueError(f"{table}: no '<n> steps' in its header; it is written with the trace.")
    steps = int(match.group(1))
    raw = json.loads(trace.read_text())
    events = raw["traceEvents"] if isinstance(raw, dict) else raw
    gpu = [(e["ts"], e["ts"] + e["dur"]) for e in events if e.get("cat") in GPU_CATS]
    host = [e["ts"] for e in events if e.get("cat") in HOST_CATS]
    if not gpu:
        raise ValueError(f"{trace}: no GPU events; profile on CUDA.")
    span = max(b for _, b in gpu) - min([a for a, _ in gpu] + host)
    busy = busy_time(gpu)
    out = {
        "steps": float(steps),
        "gpu_busy_ms_per_step": busy / steps / 1e3,
        "gpu_kernel_ms_per_step": sum(b - a for a, b in gpu) / steps / 1e3,
        "span_ms_per_step": span / steps / 1e3,
        "gpu_idle_fraction": 1 - busy / span,
    }
    for part in kernels:
        durs = [e["dur"] for e in events if e.get("cat") == "kernel" and part in e.get("name", "")]
        out[f"kernel_ms_per_step:{part}"] = sum(durs) / steps / 1e3
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--traces", required=True, help="folder of longseq_profile.py's output")
    p.add_argument("--name", default="longseq_profile")
    p.add_argument("--notes", default="")
    p.add_argument(
        "--kernels",
        default="",
        help="comma-separated kernel name fragments, each reported as kernel_ms_per_step:<fragment>",
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    traces = sorted(Path(args.traces).glob("*.trace.json"))
    if not traces:
        raise SystemExit(f"{args.traces}: no *.trace.json (benchmarks/longseq_profile.py --out).")
    rows = []
    for trace in traces:
        stem = trace.name.removesuffix(".trace.json")
        named = re.fullmatch(r"(.+)-L(\d+)-(.+)", stem)
        if named is None:
            raise SystemExit(
                f"{trace}: not named <method>-L<length>-<mode> as longseq_profile.py writes."
            )
        method, length, mode = named.groups()
        metrics = summarize(trace, tuple(k for k in args.kernels.split(",") if k))
        log.info("%s %s", stem, {k: round(v, 3) for k, v in metrics.items()})
        rows.append(
            Row(
                dataset="synthetic",
                protocol="fwd+bwd, one sublayer, profiled",
                model=f"{method} ({mode})",
                variant=f"L={length}",
                metrics=metrics,
            )
        )
    write_result(args.name, rows, notes=args.notes)


if __name__ == "__main__":
    main()
