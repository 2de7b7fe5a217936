"""Models side by side by history length: the test metrics of each history-length bucket, averaged
over a model's seeds, from the ``test_by_history_length`` of its runs' ``results.json``, or, with
``--edges``, re-bucketed from each run's ``ranks.npz`` at the given edges (so runs written with
other edges can share one table). Ranks files from before 2026-11-30 hold no history lengths: then
``--split`` (the split the runs were evaluated on) gives them, after the protocol's cap.

A mean over all users can hide where two models differ; the buckets say at which history lengths
one model gains or loses (e.g. most Amazon Beauty test histories are shorter than 10 events).

    python benchmarks/by_length.py --dataset amazon-beauty --protocol tiger \\
        --group 'sasrec=runs/beauty_converged/*-sasrec-d128-l2n05-ema998-s*' \\
        --group 'hstu=runs/beauty_round11/*-hstu-d256-h32-t055-ema999-s*' \\
        --metrics recall@10,ndcg@10 --name beauty_by_length
    python benchmarks/by_length.py ... --edges 0,10,20,50,100,200,500 --split .gpu/ml-latest-small.npz
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Row, check_same_users, glob_groups, groups_notes, write_result
from shortlist.eval.protocols import LEGACY_OPEN_END, EvalResult, history_lengths
from shortlist.eval.ranks import load_ranks

if TYPE_CHECKING:
    from shortlist.data.sequences import SequenceSplit


def bucket_label(bucket: dict) -> str:  # type: ignore[type-arg]
    """``"history 5-9"`` or ``"history 200+"`` (the last bucket is open)."""
    hi = bucket["max_length"]
    if hi is None or hi >= LEGACY_OPEN_END:
        return f"history {bucket['min_length']}+"
    return f"history {bucket['min_length']}-{hi}"


def ranks_buckets(
    run: Path,
    edges: list[int],
    metrics: list[str],
    protocol: str,
    split: SequenceSplit | None,
) -> list[dict]:  # type: ignore[type-arg]
    """The run's test metrics per bucket of ``edges``, from its ``ranks.npz`` (the same buckets as
    training's ``EvalResult.by_length_bucket``). History lengths come from the file, or from
    ``split``'s test examples capped by the protocol when the file predates them."""
    ranks = load_ranks(run).get("test")
    lengths = ranks.lengths
    if lengths is None:
        if split is None:
            raise ValueError(
                f"{run / 'ranks.npz'} has no history lengths (written before they were kept): "
                "give --split, the split file the run was evaluated on."
            )
        check_same_users(run, "test", ranks.users, split.test.users)
        lengths = history_lengths(split.test, protocol)
    result = EvalResult(
        metrics={}, per_example_rank=ranks.ranks, history_lengths=lengths,
        num_examples=len(ranks), metric_keys=tuple(metrics),
    )  # fmt: skip
    return result.by_length_bucket(edges)


def group_rows(
    name: str,
    runs: list[Path],
    metrics: list[str],
    dataset: str,
    protocol: str,
    edges: list[int] | None = None,
    split: SequenceSplit | None = None,
) -> list[Row]:
    """One row per non-empty bucket: the seeds' mean of each metric, the bucket's size and share
    (buckets from results.json, or re-made from ranks.npz at ``edges``: :func:`ranks_buckets`)."""
    buckets = []
    for run in runs:
        if edges is not None:
            buckets.append(ranks_buckets(run, edges, metrics, protocol, split))
            continue
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
    p.add_argument(
        "--edges",
        default="",
        help="comma-separated increasing history lengths: re-bucket every run from its ranks.npz",
    )
    p.add_argument(
        "--split", default="", help="split file (.npz) for ranks files without history lengths"
    )
    p.add_argument("--notes", default="")
    p.add_argument("--no-rebuild", action="store_true", help="do not rebuild BENCHMARKS.md")
    args = p.parse_args(argv)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    edges = [int(e) for e in args.edges.split(",") if e.strip()] if args.edges else None
    split = None
    if args.split:
        from shortlist.data.sequences import SequenceSplit

        split = SequenceSplit.load(args.split)
    groups = glob_groups(args.group)
    rows = [
        row
        for name, runs in groups.items()
        for row in group_rows(name, runs, metrics, args.dataset, args.protocol, edges, split)
    ]
    write_result(
        args.name, rows, notes=groups_notes(groups, args.notes), rebuild=not args.no_rebuild
    )


if __name__ == "__main__":
    main()
