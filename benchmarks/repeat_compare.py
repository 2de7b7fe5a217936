"""Two jobs of the same configs and seeds, run by run: did the second repeat the first?

Each ``--group NAME=A_GLOB=B_GLOB`` pairs the run folders of job A and job B by their training seed
(``results.json``'s ``train_config.seed``). Per pair: test NDCG@10 and best epoch in each job, and
whether every validation and test example got the same rank (``ranks.npz``); per group, how many
seeds repeated exactly. A job that repeats another seed for seed adds no independent draw: its
runs are not replicates to pool (2026-11-30: ML-100k's round 3 against the twelfth session's job).

    python benchmarks/repeat_compare.py --dataset ml-100k --protocol hstu --name ml100k_repeat \
        --group 'ksa=runs/final/ml100k_frozen2/ml-100k-ksa-s*=runs/final/ml100k_round3/*-ksa-c8w4-hybrid-ema995-p50-s*'
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Row, write_result
from shortlist.eval.compare import check_aligned, expand_runs
from shortlist.eval.ranks import load_ranks

log = logging.getLogger("benchmarks.repeat_compare")


def by_seed(pattern: str) -> dict[int, Path]:
    """The run folders matching ``pattern``, keyed by their training seed; ValueError when two
    share a seed."""
    runs: dict[int, Path] = {}
    for run in expand_runs([pattern]):
        seed = int(json.loads((run / "results.json").read_text())["train_config"]["seed"])
        if seed in runs:
            raise ValueError(f"{pattern!r}: {runs[seed]} and {run} both have seed {seed}.")
        runs[seed] = run
    return runs


def compare_pair(a: Path, b: Path) -> dict[str, float]:
    """One seed's runs of jobs A and B: their test NDCG@10 and best epochs, and for each split
    whether the ranks are the same (1.0) and how many examples differ."""
    res_a, res_b = (json.loads((r / "results.json").read_text()) for r in (a, b))
    out: dict[str, float] = {
        "ndcg@10_a": float(res_a["test"]["ndcg@10"]),
        "ndcg@10_b": float(res_b["test"]["ndcg@10"]),
        "best_epoch_a": float(res_a["best_epoch"]),
        "best_epoch_b": float(res_b["best_epoch"]),
    }
    ranks_a, ranks_b = load_ranks(a), load_ranks(b)
    for split in ("valid", "test"):
        sa, sb = ranks_a.get(split), ranks_b.get(split)
        check_aligned([sa, sb], [a, b], split)
        differ = int((sa.ranks != sb.ranks).sum())
        out[f"{split}_same_ranks"] = float(differ == 0)
        out[f"{split}_ranks_differing"] = float(differ)
    return out


def compare_group(name: str, pattern_a: str, pattern_b: str) -> list[tuple[str, dict[str, Any]]]:
    """(variant, metrics) rows: one per seed both jobs ran, then the group's summary."""
    runs_a, runs_b = by_seed(pattern_a), by_seed(pattern_b)
    seeds = sorted(set(runs_a) & set(runs_b))
    if not seeds:
        raise ValueError(f"--group {name}: no seed in both {pattern_a!r} and {pattern_b!r}.")
    rows = [(f"seed={s}", compare_pair(runs_a[s], runs_b[s])) for s in seeds]
    same = sum(m["valid_same_ranks"] * m["test_same_ranks"] for _, m in rows)
    gaps = [abs(m["ndcg@10_a"] - m["ndcg@10_b"]) for _, m in rows]
    summary = {"seeds": float(len(seeds)), "seeds_same_ranks": same, "max_ndcg@10_gap": max(gaps)}
    return [*rows, (f"{len(seeds)} seeds", summary)]


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--group", action="append", required=True, help="NAME=A_GLOB=B_GLOB")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--protocol", required=True)
    parser.add_argument("--name", required=True, help="result name: benchmarks/results/<name>.json")
    parser.add_argument("--notes", default="")
    parser.add_argument("--no-rebuild", action="store_true")
    args = parser.parse_args()
    rows: list[Row] = []
    for item in args.group:
        parts = item.split("=")
        if len(parts) != 3 or not all(parts):
            parser.error(f"--group expects NAME=A_GLOB=B_GLOB. Got {item!r}.")
        name, pattern_a, pattern_b = parts
        for variant, metrics in compare_group(name, pattern_a, pattern_b):
            log.info("%s %s: %s", name, variant, metrics)
            rows.append(Row(args.dataset, args.protocol, name, variant, metrics))
    write_result(
        args.name,
        rows,
        notes=(
            (args.notes + " " if args.notes else "")
            + "Runs of job A and job B paired by training seed; *_same_ranks is 1 when every "
            "example of the split got the same rank in both; seeds_same_ranks counts the seeds "
            "whose validation and test ranks were all the same."
        ),
        rebuild=not args.no_rebuild,
    )


if __name__ == "__main__":
    main()
