"""Models side by side by history length: the test metrics of each history-length bucket, averaged
over a model's seeds, from the ``test_by_history_length`` of its runs' ``results.json``.

A mean over all users can hide where two models differ; the buckets say at which history lengths
one model gains or loses (e.g. most Amazon Beauty test histories are shorter than 10 events).

    python benchmarks/by_length.py --dataset amazon-beauty --protocol tiger \\
        --group 'sasrec=runs/beauty_converged/*-sasrec-d128-l2n05-ema998-s*' \\
        --group 'hstu=runs/beauty_round11/*-hstu-d256-h32-t055-ema999-s*' \\
        --metrics recall@10,ndcg@10 --name beauty_by_length
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Row, glob_groups, write_result

# runs before 2026-11-30 closed their last bucket at this length instead of None
OPEN_END = 10**9 - 1


def bucket_label(bucket: dict) -> str:  # type: ignore[type-arg]
    """``"history 5-9"`` or ``"history 200+"`` (the last bucket is open)."""
    hi = bucket["max_length"]
    if hi is None or hi >= OPEN_END:
        return f"history {bucket['min_length']}+"
    return f"history {bucket['min_length']}-{hi}"


def group_rows(
    name: str, runs: list[Path], metrics: list[str], dataset: str, protocol: str
) -> list[Row]:
    """One row per non-empty bucket: the seeds' mean of each metric, the bucket's size and share."""
    buckets = []
    for run in runs:
        path = run / "results.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: is {run} a finished run folder?")
        result = json.loads(path.read_text())
        if "test_by_history_length" not in result:
            raise ValueError(
                f"{path} has no 'test_by_history_length' (written by shortlist train)."
            )
        buckets.append(result["test_by_history_length"])
    first = buckets[0]
    for run, b in zip(runs[1:], buckets[1:], strict=True):
        if [(x["min_length"], x["num_examples"]) for x in b] != [
            (x["min_length"], x["num_examples"]) for x in first
        ]:
            raise ValueError(f"{run} and {runs[0]} have other length buckets: not the same split?")
    rows = []
    for i, bucket in enumerate(first):
        if bucket["num_examples"] == 0:
            continue
        values = {m: statistics.fmean(b[i][m] for b in buckets) for m in metrics}
        values |= {"examples": bucket["num_examples"], "share": bucket["share"]}
        label = f"{bucket_label(bucket)}; mean of {len(runs)} seeds"
        rows.append(Row(dataset, protocol, name, label, values))
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--group", action="append", required=True, help="NAME=GLOB of run folders")
    p.add_argument("--metrics", default="recall@10,ndcg@10", help="comma-separated metric keys")
    p.add_argument("--dataset", required=True)
    p.add_argument("--protocol", required=True)
    p.add_argument("--name", required=True, help="result name: benchmarks/results/<name>.json")
    p.add_argument("--notes", default="")
    p.add_argument("--no-rebuild", action="store_true", help="do not rebuild BENCHMARKS.md")
    args = p.parse_args(argv)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    groups = glob_groups(args.group)
    rows = [
        row
        for name, runs in groups.items()
        for row in group_rows(name, runs, metrics, args.dataset, args.protocol)
    ]
    notes = "Run folders: " + "; ".join(
        f"{k}: {', '.join(r.name for r in v)}" for k, v in groups.items()
    )
    write_result(
        args.name,
        rows,
        notes=" ".join(x for x in (args.notes, notes + ".") if x),
        rebuild=not args.no_rebuild,
    )


if __name__ == "__main__":
    main()
