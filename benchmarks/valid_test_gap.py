"""Why a model's validation gain may not carry over to test: two checks on finished runs and a split.

On MovieLens latest-small (HSTU protocol), KSA's validation NDCG@10 is far above SASRec's while its
test NDCG@10 is not (``longseq_quality.json``). This script measures two explanations:

1. **Selection on a noisy validation curve**: per run folder (``metrics.jsonl`` and
   ``results.json`` of ``shortlist train``), the best epoch's validation NDCG@10 minus the mean of
   the epochs within ``--window`` of it; averaged per config over its seeds (``selection_bias``).
2. **Timestamp ties**: per saved split (``benchmarks/seqrec.py prepare``), the share of validation
   and of test targets whose timestamp equals that of the event just before them (events of one
   timestamp keep the file's order, so a tie can order the two targets differently).

    python benchmarks/valid_test_gap.py --split .gpu/ml-latest-small.npz \\
        --runs runs/mls_plain runs/mls_ema              # -> valid_test_gap.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from by_target_gap import target_gaps
from common import Row, epoch_records, write_result

if TYPE_CHECKING:
    from shortlist.data.sequences import EvalExamples


def selection_bias(run_dir: Path, window: int) -> tuple[float, float, float]:
    """(best epoch's valid NDCG@10, mean of the other epochs within ``window``, test NDCG@10)."""
    epochs = {r["epoch"]: r["valid"]["ndcg@10"] for r in epoch_records(run_dir) if "valid" in r}
    result = json.loads((run_dir / "results.json").read_text())
    best = result["best_epoch"]
    near = [v for e, v in epochs.items() if e != best and abs(e - best) <= window]
    if best not in epochs or not near:
        raise ValueError(f"{run_dir}: no validation at best epoch {best} or around it.")
    return epochs[best], statistics.mean(near), result["test"]["ndcg@10"]


def tie_share(examples: EvalExamples, where: str) -> float:
    """Share of the ``where`` examples (with a history) whose target timestamp equals the last
    history event's (:func:`by_target_gap.target_gaps` of 0)."""
    gaps = target_gaps(examples, where)
    return float(np.mean(gaps[gaps >= 0] == 0))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--split", required=True, help="a saved split (.npz) with timestamps")
    p.add_argument("--runs", nargs="+", required=True, help="folders holding run folders")
    p.add_argument("--window", type=int, default=5, help="epochs on each side of the best one")
    p.add_argument("--dataset", default="ml-latest-small")
    p.add_argument("--name", default="valid_test_gap")
    args = p.parse_args(argv)
    from shortlist.data.sequences import SequenceSplit

    split = SequenceSplit.load(args.split)
    rows = [
        Row(
            dataset=args.dataset,
            protocol="timestamp ties",
            model="split",
            variant=Path(args.split).name,
            metrics={
                "valid_tie_share": tie_share(split.valid, "valid"),
                "test_tie_share": tie_share(split.test, "test"),
            },
        )
    ]
    by_config: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    for folder in args.runs:
        for run_dir in sorted(Path(folder).iterdir()):
            if (run_dir / "metrics.jsonl").is_file():
                config = run_dir.name.rsplit("-s", 1)[0]
                by_config[config].append(selection_bias(run_dir, args.window))
    for config, runs in by_config.items():
        rows.append(
            Row(
                dataset=args.dataset,
                protocol=f"selection on validation, +-{args.window} epochs",
                model=config,
                variant=f"mean of {len(runs)} seeds",
                metrics={
                    "valid_ndcg@10_best": statistics.mean(r[0] for r in runs),
                    "valid_ndcg@10_near": statistics.mean(r[1] for r in runs),
                    "selection_bias": statistics.mean(r[0] - r[1] for r in runs),
                    "ndcg@10": statistics.mean(r[2] for r in runs),
                },
            )
        )
    write_result(
        args.name,
        rows,
        notes="Run folders of the H200 runs behind sweep_mls.json and sweep_mls_ema.json "
        "(metrics.jsonl, results.json), and the split the runs trained on.",
    )


if __name__ == "__main__":
    main()
