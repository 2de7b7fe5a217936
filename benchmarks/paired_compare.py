"""Paired bootstrap of models against a baseline on the same test users (shortlist.eval.compare).

Each group is a model's run folders (its seeds), every one with the ``ranks.npz`` that
``shortlist train`` and ``benchmarks/seqrec.py`` write; the per-user metric is averaged over a
group's seeds and resampled over the users, the same draw for both models. A row per (model,
metric): the model's and the baseline's means, their ratio and difference with the bootstrap's
interval, and the share of draws where the model is not above the baseline.

    python benchmarks/paired_compare.py --dataset ml-100k --protocol hstu \\
        --group 'sasrec=runs/ml100k/*-sasrec-s*' --group 'ksa=runs/ml100k/*-ksa-s*' \\
        --baseline sasrec --metrics ndcg@10,hr@10 --name paired_ml100k
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Row, glob_groups, write_result
from shortlist.eval.compare import compare_runs

log = logging.getLogger("paired_compare")


def compare_groups(
    groups: dict[str, list[Path]],
    baseline: str,
    metrics: list[str],
    *,
    dataset: str,
    protocol: str,
    split: str,
    n_boot: int,
    confidence: float,
) -> list[Row]:
    """One row per (non-baseline group, metric); see the module docstring."""
    if baseline not in groups:
        raise ValueError(f"--baseline {baseline!r} is not one of the groups {sorted(groups)}.")
    rows = []
    for name, runs in groups.items():
        if name == baseline:
            continue
        for metric in metrics:
            c = compare_runs(
                runs, groups[baseline], metric, split, n_boot=n_boot, confidence=confidence
            )
            log.info("%s vs %s: %s", name, baseline, c.summary())
            rows.append(
                Row(
                    dataset=dataset,
                    protocol=protocol,
                    model=name,
                    variant=f"vs {baseline}, {split}, {len(runs)} and {len(c.runs_b)} seeds",
                    metrics={
                        metric: c.mean_a,
                        f"{metric}_baseline": c.mean_b,
                        f"{metric}_vs_baseline_ratio": c.ratio,
                        "ratio_ci_low": c.ratio_ci[0],
                        "ratio_ci_high": c.ratio_ci[1],
                        f"{metric}_gap": c.diff,
                        "gap_ci_low": c.diff_ci[0],
                        "gap_ci_high": c.diff_ci[1],
                        "p_not_above": c.p_not_above,
                        "examples": c.n_examples,
                    },
                )
            )
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--group", action="append", required=True, help="NAME=GLOB of run folders")
    p.add_argument("--baseline", required=True, help="the group the others are compared with")
    p.add_argument("--metrics", default="ndcg@10", help="comma-separated metric keys")
    p.add_argument("--split", default="test", choices=["valid", "test"])
    p.add_argument("--dataset", required=True)
    p.add_argument("--protocol", required=True)
    p.add_argument("--boot", type=int, default=2000, help="bootstrap draws")
    p.add_argument("--confidence", type=float, default=0.95)
    p.add_argument("--name", required=True, help="result name: benchmarks/results/<name>.json")
    p.add_argument("--notes", default="")
    p.add_argument("--no-rebuild", action="store_true", help="do not rebuild BENCHMARKS.md")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    groups = glob_groups(args.group)
    rows = compare_groups(
        groups,
        args.baseline,
        [m.strip() for m in args.metrics.split(",") if m.strip()],
        dataset=args.dataset,
        protocol=args.protocol,
        split=args.split,
        n_boot=args.boot,
        confidence=args.confidence,
    )
    pct = round(args.confidence * 100)
    notes = (
        f"Paired bootstrap over the {args.split} users ({args.boot} draws, {pct}% intervals): "
        "each group's per-user metric averaged over its seeds, the same resampled users for both "
        "models; p_not_above is the share of draws where the model is not above the baseline. "
        "Groups: " + "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in groups.items()) + "."
    )
    write_result(
        args.name,
        rows,
        notes=" ".join(x for x in (args.notes, notes) if x),
        rebuild=not args.no_rebuild,
    )


if __name__ == "__main__":
    main()
