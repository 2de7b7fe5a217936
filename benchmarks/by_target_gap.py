"""Models side by side by the time between each evaluation target and the event just before it, on
the validation and the test examples, from the runs' ``ranks.npz`` and the split's timestamps.

On MovieLens latest-small a long-history model can be well above SASRec on the validation targets
and below it on the test targets of the same users (docs/long_sequences.md). Users rate in
sessions: about a fifth of the targets share their timestamp with the event before them (events of
one timestamp keep the file's movie-id order), most follow it within an hour, a few come days later.
The buckets say whether a gain or a loss sits in one kind of target, and whether the
validation-test gap does.

    python benchmarks/by_target_gap.py --split .gpu/ml-latest-small.npz \\
        --dataset ml-latest-small --protocol hstu --baseline sasrec \\
        --group 'sasrec=runs/mls_round2/*-sasrec-s*' \\
        --group 'elastic-w32=runs/mls_round3/*-elastic-m0-w32-s*' --name mls_by_target_gap

Edges are seconds (default ``0,1,3600,86400``: the same timestamp, within an hour, within a day,
later); the last bucket is open. Each row is one group, split and bucket: the metrics' mean over
the bucket's examples, averaged over the group's seeds, the bucket's size and share, and with
``--baseline`` each metric's ratio to the baseline group's in the same bucket.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Row, check_same_users, glob_groups, groups_notes, write_result
from shortlist.eval.metrics import metric_values
from shortlist.eval.ranks import load_ranks

if TYPE_CHECKING:
    from shortlist.data.sequences import EvalExamples, SequenceSplit
    from shortlist.eval.ranks import SplitRanks

SPLITS = ("valid", "test")
DEFAULT_EDGES = (0, 1, 3600, 86400)


def target_gaps(examples: EvalExamples, where: str) -> np.ndarray:
    """(E,) int64 seconds from each example's last history event to its target (-1 where the
    history is empty). ``where`` names the split in errors."""
    hist, target_t = examples.history_timestamps, examples.target_timestamps
    if hist is None or target_t is None:
        raise ValueError(
            f"The {where} examples of the split have no timestamps: the gaps cannot be measured "
            "(save the split from a dataset with timestamps)."
        )
    gaps = np.full(len(target_t), -1, dtype=np.int64)
    has = hist.lengths > 0
    gaps[has] = np.asarray(target_t)[has] - hist.values[hist.offsets[1:][has] - 1]
    return gaps


def _seconds(s: int) -> str:
    """3600 -> "1 h", 86400 -> "1 d", 90 -> "90 s"."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size and s % size == 0:
            return f"{s // size} {unit}"
    return f"{s} s"


def bucket_label(lo: int, hi: int | None) -> str:
    """``"gap 0 s"`` (the same timestamp), ``"gap 1 s-1 h"`` ([lo, hi)), ``"gap 1 d+"`` (open)."""
    if hi is None:
        return f"gap {_seconds(lo)}+"
    if hi == lo + 1:
        return f"gap {_seconds(lo)}"
    return f"gap {_seconds(lo)}-{_seconds(hi)}"


def bucket_of(examples: EvalExamples, where: str, edges: list[int]) -> np.ndarray:
    """(E,) index of each example's gap bucket among ``edges`` ([e_i, e_{i+1}), the last open);
    -1 for an example without history."""
    gaps = target_gaps(examples, where)
    return np.searchsorted(np.asarray(edges), gaps, side="right") - 1


def bucket_means(
    ranks: SplitRanks, buckets: np.ndarray, metrics: list[str]
) -> dict[int, dict[str, float]]:
    """A run's mean of each metric over each non-empty bucket's examples (``ranks`` of one split,
    ``buckets``: :func:`bucket_of` of the same examples), by bucket index."""
    values = {m: metric_values(ranks.ranks, m) for m in metrics}
    return {
        int(i): {m: float(v[buckets == i].mean()) for m, v in values.items()}
        for i in np.unique(buckets[buckets >= 0])
    }


def group_rows(
    name: str,
    runs: list[Path],
    split: SequenceSplit,
    edges: list[int],
    metrics: list[str],
    dataset: str,
) -> list[Row]:
    """One row per split and non-empty bucket: the seeds' mean of each metric, size and share."""
    rows = []
    loaded = [load_ranks(r) for r in runs]  # each ranks.npz read once, for both splits
    for split_name in SPLITS:
        examples = getattr(split, split_name)
        buckets = bucket_of(examples, split_name, edges)
        per_run = []
        for run, ranks in zip(runs, loaded, strict=True):
            split_ranks = ranks.get(split_name)
            check_same_users(run, split_name, split_ranks.users, examples.users)
            per_run.append(bucket_means(split_ranks, buckets, metrics))
        for i in sorted(per_run[0]):
            hi = edges[i + 1] if i + 1 < len(edges) else None
            n = int((buckets == i).sum())
            values = {m: statistics.fmean(b[i][m] for b in per_run) for m in metrics}
            values |= {"examples": n, "share": n / len(buckets)}
            label = f"{split_name}; {bucket_label(edges[i], hi)}; mean of {len(runs)} seeds"
            rows.append(Row(dataset, split.protocol, name, label, values))
    return rows


def add_ratios(rows: list[Row], baseline: str, metrics: list[str]) -> None:
    """Give every row ``<metric>_vs_baseline_ratio`` against the baseline group's row of the same
    split and bucket (in place); ValueError if no group is named ``baseline``."""

    def key(row: Row) -> str:  # "test; gap 0 s" (the seed count may differ between groups)
        return row.variant.rsplit("; mean of ", 1)[0]

    base = {key(r): r.metrics for r in rows if r.model == baseline}
    if not base:
        raise ValueError(f"--baseline {baseline!r} is not one of the --group names.")
    for r in rows:
        ref = base.get(key(r))
        for m in metrics:
            if ref is not None and ref[m] > 0:
                r.metrics[f"{m}_vs_baseline_ratio"] = r.metrics[m] / ref[m]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--group", action="append", required=True, help="NAME=GLOB of run folders")
    p.add_argument("--split", required=True, help="the split file (.npz) the runs evaluated")
    p.add_argument("--dataset", required=True)
    p.add_argument("--protocol", required=True, help="the protocol the runs were evaluated under")
    p.add_argument("--metrics", default="hr@10,ndcg@10", help="comma-separated metric keys")
    p.add_argument(
        "--edges",
        default=",".join(map(str, DEFAULT_EDGES)),
        help="comma-separated increasing gaps in seconds, from 0 (the last bucket is open)",
    )
    p.add_argument("--baseline", default="", help="a group name: add each metric's ratio to it")
    p.add_argument("--name", required=True, help="result name: benchmarks/results/<name>.json")
    p.add_argument("--notes", default="")
    p.add_argument("--no-rebuild", action="store_true", help="do not rebuild BENCHMARKS.md")
    args = p.parse_args(argv)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    try:
        edges = [int(e) for e in args.edges.split(",") if e.strip()]
    except ValueError:
        raise ValueError(f"--edges must be comma-separated integers, got {args.edges!r}.") from None
    if not edges or edges[0] != 0 or any(b <= a for a, b in itertools.pairwise(edges)):
        raise ValueError(f"--edges must start at 0 and increase, got {args.edges!r}.")
    from shortlist.data.sequences import SequenceSplit

    split = SequenceSplit.load(args.split)
    if split.protocol != args.protocol:
        raise ValueError(
            f"--protocol {args.protocol!r} but {args.split} was made for {split.protocol!r}."
        )
    groups = glob_groups(args.group)
    rows = [
        row
        for name, runs in groups.items()
        for row in group_rows(name, runs, split, edges, metrics, args.dataset)
    ]
    if args.baseline:
        add_ratios(rows, args.baseline, metrics)
    write_result(
        args.name, rows, notes=groups_notes(groups, args.notes), rebuild=not args.no_rebuild
    )


if __name__ == "__main__":
    main()
