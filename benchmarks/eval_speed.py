"""Evaluation speed: ``evaluate`` with length-sorted batches against batches padded to max_len.

For each frozen config of a dataset (untrained weights: the time does not depend on them), the
test examples of a saved split are ranked twice, in the same process: once with every batch padded
to the model's ``max_len`` in input order (``by_length=False``, as before 2026-11-30) and once
sorted by history length with each batch padded to its own longest history (the default). Per row:
the seconds of each (the best of ``--repeats``), their ratio, and whether the two gave the same
rank for every example (``ranks_equal`` 1).

    nice python benchmarks/eval_speed.py --split .gpu/ml-latest-small.npz --dataset ml-latest-small
    nice python benchmarks/eval_speed.py --split .gpu/ml-100k.npz --dataset ml-100k --name eval_speed_ml100k

The splits are made by ``benchmarks/seqrec.py prepare`` (they are not committed).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Row, write_result
from shortlist.data.sequences import SequenceSplit
from shortlist.eval.protocols import evaluate
from shortlist.models import build_model_from_section
from shortlist.train.config import load_config

log = logging.getLogger("benchmarks.eval_speed")


def _timed(
    model: torch.nn.Module, split: SequenceSplit, protocol: str, **kw: object
) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    result = evaluate(model, split.test, protocol, **kw)  # type: ignore[arg-type]
    return time.perf_counter() - start, result.per_example_rank


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--split", required=True, help="a saved split (.npz)")
    parser.add_argument("--dataset", required=True, help="configs/<dataset>/<model>.yaml are timed")
    parser.add_argument("--models", default="sasrec,ksa,elastic")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--name", default="eval_speed")
    parser.add_argument("--no-rebuild", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    split = SequenceSplit.load(args.split)
    rows: list[Row] = []
    for family in args.models.split(","):
        cfg = load_config(ROOT / "configs" / args.dataset / f"{family}.yaml")
        torch.manual_seed(0)
        model = build_model_from_section(cfg.model, num_items=split.num_items)
        batch = cfg.eval.retriever_batch()
        fixed = sorted_ = float("inf")
        for _ in range(args.repeats):
            t_fixed, r_fixed = _timed(model, split, cfg.protocol, batch_size=batch, by_length=False)
            t_sorted, r_sorted = _timed(model, split, cfg.protocol, batch_size=batch)
            fixed, sorted_ = min(fixed, t_fixed), min(sorted_, t_sorted)
        lengths = np.minimum(np.diff(split.test.history.offsets), model.config.max_len)
        metrics = {
            "examples": len(split.test),
            "batch": batch,
            "max_len": model.config.max_len,
            "mean_history": float(lengths.mean()),
            "fixed_s": fixed,
            "by_length_s": sorted_,
            "speedup_ratio": fixed / sorted_,
            "ranks_equal": float(np.array_equal(r_fixed, r_sorted)),
        }
        log.info("%s: %s", family, metrics)
        rows.append(
            Row(
                args.dataset,
                f"{cfg.protocol}, test",
                family,
                f"configs/{args.dataset}/{family}.yaml",
                metrics,
            )
        )
    write_result(
        args.name,
        rows,
        notes=(
            f"{args.threads} threads; the frozen configs' models with untrained weights (seed 0), "
            f"best of {args.repeats}; fixed: every batch padded to max_len in input order, "
            "by_length: sorted by history length, each batch padded to its longest history."
        ),
        rebuild=not args.no_rebuild,
    )


if __name__ == "__main__":
    main()
