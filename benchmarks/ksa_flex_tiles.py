"""KSA's FlexAttention kernels under different Triton tiles: one sublayer's compiled step at one length.

``longseq_speed.py`` times KSA with Inductor's default tiles for the GPU (on Hopper, bf16, head
width 64, in torch 2.13's ``_inductor/template_heuristics/triton.py``: forward 128 x 128 with 4
warps, backward (64, 128, 128, 64) with 8 warps; the H200 runs torch 2.11). Those defaults are
made for dense masks; KSA's block mask keeps a few (about 4) key blocks of 128 per query block,
and in the compiled step at 16k the FlexAttention backward was the largest kernel
(docs/long_sequences.md). This script
times the same sublayer step (``longseq_speed.make_step``: forward plus backward from fixed output
gradients, ``torch.compile`` mode ``--mode``) for each tile setting of ``--variants`` (a name and
a ``shortlist.ops.ksa.parse_flex_tiles`` string; ``default`` = Inductor's own), beside compiled
SDPA (flash) full attention in the same process, and writes ``ksa_flex_tiles.json`` (one row per
setting, ``speedup_vs_sdpa_ratio`` against that SDPA row). ``--rounds`` (default 2) times every
case that many times, one after another per round, and rows give the median: the first sweep
(2026-11-29, one round, default tiles first) measured a gain that later runs did not repeat, and
an order effect cannot be told from the tiles within one round. The result file is rewritten after
every case, so a hung compile loses only what follows it.

    python benchmarks/ksa_flex_tiles.py --device cuda --length 16384            # H200
    python benchmarks/ksa_flex_tiles.py --device cuda --variants 'a:bwd_BLOCK_M1=32,...;b:...'
    python benchmarks/ksa_flex_tiles.py --best benchmarks/results/ksa_flex_tiles*.json  # prints tiles
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Row, write_result
from longseq_speed import add_sublayer_args, time_case
from shortlist.ops.ksa import parse_flex_tiles

log = logging.getLogger("benchmarks.ksa_flex_tiles")


def _bwd(m1: int, n1: int, m2: int, n2: int, warps: int, stages: int) -> str:
    return (
        f"bwd_BLOCK_M1={m1},bwd_BLOCK_N1={n1},bwd_BLOCK_M2={m2},bwd_BLOCK_N2={n2},"
        f"bwd_num_warps={warps},bwd_num_stages={stages}"
    )


def _fwd(m: int, n: int, warps: int, stages: int) -> str:
    return f"fwd_BLOCK_M={m},fwd_BLOCK_N={n},fwd_num_warps={warps},fwd_num_stages={stages}"


# name -> tiles; the backward candidates come from Inductor's own autotuning list for flex
# (torch/_inductor/template_heuristics/triton.py: BLOCK_M in 32/64, BLOCK_N in 32/64/128)
VARIANTS: dict[str, str] = {
    "default": "",
    "b64x64w4s3": _bwd(64, 64, 64, 64, 4, 3),
    "b32x64w4s3": _bwd(32, 64, 64, 32, 4, 3),
    "b32x128w4s3": _bwd(32, 128, 128, 32, 4, 3),
    "b64x128w4s3": _bwd(64, 128, 128, 64, 4, 3),
    "b64x128w8s2": _bwd(64, 128, 128, 64, 8, 2),
    "b32x64w4s1": _bwd(32, 64, 64, 32, 4, 1),
    "f64x64w4s3": _fwd(64, 64, 4, 3),
    "f128x128w8s2": _fwd(128, 128, 8, 2),
}


def parse_variants(spec: str, block: int) -> dict[str, str]:
    """``"name:tiles;name:tiles"`` (or ``""`` for :data:`VARIANTS`) -> validated {name: tiles}."""
    if not spec:
        chosen = dict(VARIANTS)
    else:
        chosen = {}
        for part in (p for p in spec.split(";") if p.strip()):
            name, sep, tiles = part.partition(":")
            if not sep or not name.strip():
                raise ValueError(f"--variants: expected 'name:tiles' items, got {part!r}.")
            chosen[name.strip()] = tiles.strip()
    for name, tiles in chosen.items():
        parse_flex_tiles(tiles, block, f"--variants ({name})")
    return chosen


def best_tiles(paths: list[str]) -> tuple[str, str, float]:
    """(name, tiles, ratio) of the KSA row with the highest ``speedup_vs_sdpa_ratio`` over the
    result files ``paths`` (each ratio is against the SDPA row of its own run)."""
    best: tuple[str, str, float] | None = None
    for path in paths:
        result = json.loads(Path(path).read_text())
        for row in result["rows"]:
            ratio = row["metrics"].get("speedup_vs_sdpa_ratio")
            if row["model"] == "ksa" and ratio is not None and (best is None or ratio > best[2]):
                best = (row["variant"], result["variants"][row["variant"]], ratio)
    if best is None:
        raise ValueError(f"No timed KSA row in {paths}: run the tile sweep first.")
    return best


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--name", default="ksa_flex_tiles")
    p.add_argument("--length", type=int, default=16384)
    p.add_argument("--tokens", type=int, default=65536, help="tokens per batch (B = tokens / L)")
    add_sublayer_args(p, tiles=False)  # each variant sets the tiles
    p.add_argument("--mode", default="reduce-overhead", help="torch.compile mode ('eager': none)")
    p.add_argument("--variants", default="", help="'name:tiles;...' (default: the built-in list)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="times every case is timed, one case after another per round (rows: the median)",
    )
    p.add_argument(
        "--best",
        nargs="+",
        metavar="RESULT",
        help="print the tiles of the fastest KSA row of these result files and exit",
    )
    args = p.parse_args(argv)
    if args.best:
        print(best_tiles(args.best)[1])
        return
    if args.rounds < 1:
        raise ValueError(f"--rounds must be >= 1. Got {args.rounds} instead.")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    variants = parse_variants(args.variants, args.ksa_block)
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}

    def case(method: str, name: str, tiles: str) -> None:
        args.ksa_tiles = tiles
        try:
            res = time_case(method, args.length, args, args.mode)
        except Exception as err:  # a tile setting that fails to compile is a row, not a lost run
            log.warning("%s %s failed: %s", method, name, err)
            res = {"failed": True}
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
        log.info("%-8s %-14s %s", method, name, {k: round(v, 5) for k, v in res.items()})
        results.setdefault((method, name), []).append(res)
        _write(args, results, variants)

    for _ in range(args.rounds):  # every case once a round: order effects show between rounds
        case("sdpa", "flash", "")
        for name, tiles in variants.items():
            case("ksa", name, tiles)


def _write(
    args: argparse.Namespace,
    results: dict[tuple[str, str], list[dict[str, Any]]],
    variants: dict[str, str],
) -> None:
    """One row per case: the median over rounds of its step time (each round's in
    ``fwd_bwd_s_round<i>``), and its ratio to the median SDPA step."""

    def median_s(runs: list[dict[str, Any]]) -> float | None:
        times = [r["fwd_bwd_s"] for r in runs if "fwd_bwd_s" in r]
        return statistics.median(times) if times else None

    sdpa = median_s(results.get(("sdpa", "flash"), []))
    rows = []
    for (method, name), runs in results.items():
        seconds = median_s(runs)
        metrics: dict[str, float] = {"rounds": float(len(runs))}
        for i, r in enumerate(runs):
            if "fwd_bwd_s" in r:
                metrics[f"fwd_bwd_s_round{i}"] = float(r["fwd_bwd_s"])
        if seconds is None:
            metrics["failed"] = 1.0
        else:
            metrics["fwd_bwd_s"] = seconds
            metrics["tokens_per_s"] = float(runs[0]["batch"]) * args.length / seconds
            if sdpa:
                metrics["speedup_vs_sdpa_ratio"] = sdpa / seconds
        rows.append(
            Row(
                dataset="synthetic",
                protocol=f"fwd+bwd, one sublayer, L={args.length}, compile {args.mode}",
                model=method,
                variant=name,
                metrics=metrics,
            )
        )
    config = {k: getattr(args, k) for k in ("device", "length", "tokens", "dim", "heads", "chunk",
                                             "window", "ksa_block", "ksa_span", "mode", "warmup",
                                             "repeats", "rounds")}  # fmt: skip
    write_result(
        args.name,
        rows,
        notes="KSA sublayer step (forward + backward from fixed output gradients) with the "
        "FlexAttention kernels' Triton tiles of each variant (tiles in 'variants'), beside SDPA "
        f"(flash) in the same process; dtype {'bf16' if args.device.startswith('cuda') else 'fp32'}.",
        extra={"config": config, "variants": variants},
        rebuild=False,
    )


if __name__ == "__main__":
    main()
