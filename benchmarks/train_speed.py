"""SASRec training throughput: our trainer vs RecBole 1.2.1, same model size and batch, same run.

Both train SASRec (hidden 64, 2 layers, 2 heads, feed-forward 256, dropout 0.5, full-softmax
cross-entropy, Adam(W) lr 1e-3) on the same training examples. The two batch differently: RecBole
trains one row per (history, target) example, we train one row per user sequence with a target at
every position. The comparable unit is therefore the training example (one target) a second
(``examples_per_s``: RecBole's rows, our non-padding positions); ``sequences_per_s`` is reported too.

    # CPU (2 threads), ML-1M histories at max length 200:
    python benchmarks/train_speed.py --split .gpu/ml-1m-speed.npz --device cpu --threads 2 --batch-size 128 \
        --recbole-cmd ".venv-recbole/bin/python benchmarks/recbole/run_sasrec.py --data ... --speed-only ..." \
        --recbole-json runs/recbole/results/...json --name train_speed
    # prepare the split first (ML-1M order does not matter for speed):
    python benchmarks/train_speed.py --prepare ml-1m --max-len 200 --split .gpu/ml-1m-speed.npz
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Row, command_line, write_result

log = logging.getLogger("benchmarks.train_speed")


def prepare(dataset: str, out: str) -> None:
    """Save a leave-one-out split of ``dataset`` for speed runs.

    ML-1M here has no timestamps (order "none"); the split is then taken in file order, which is
    meaningless for quality but irrelevant to throughput.
    """
    import dataclasses

    from shortlist.data.datasets import load_dataset
    from shortlist.data.splits import leave_one_out

    data = load_dataset(dataset)
    if data.order == "none":
        data = dataclasses.replace(data, order="sequence")
    split = leave_one_out(data)
    split.save(out)
    log.info("%s -> %s: %s", dataset, out, split.summary())


def ours(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from shortlist.data.sequences import SequenceSplit
    from shortlist.models import build_model
    from shortlist.train.trainer import TrainConfig, Trainer

    split = SequenceSplit.load(args.split)
    torch.manual_seed(0)
    model = build_model(
        "sasrec",
        num_items=split.num_items,
        max_len=args.max_len,
        dim=64,
        num_layers=2,
        num_heads=2,
        ffn_dim=256,
        dropout=0.5,
        loss="softmax",
    )
    cfg = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=1e-3,
        num_workers=args.workers,
        device=args.device,
        threads=args.threads,
        max_steps_per_epoch=args.steps,
        progress=False,
        compile=args.compile,
    )
    with tempfile.TemporaryDirectory() as tmp:
        result = Trainer(model, split.train, cfg, tmp).fit(resume=False)
    timed = (
        result.history[1:] or result.history
    )  # the first epoch pays for warm-up (allocator, kernels)
    return {
        "examples_per_s": sum(r["positions_per_s"] * r["train_s"] for r in timed)
        / sum(r["train_s"] for r in timed),
        "sequences_per_s": sum(r["sequences_per_s"] * r["train_s"] for r in timed)
        / sum(r["train_s"] for r in timed),
        "epoch_steps": args.steps,
        "device": str(cfg.device),
    }


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--prepare", metavar="DATASET", help="only save the split of DATASET to --split")
    p.add_argument("--split", required=True, help="a saved split (.npz)")
    p.add_argument("--dataset", default="ml-1m", help="label for the result rows")
    p.add_argument("--max-len", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=50, help="batches per timed epoch")
    p.add_argument(
        "--epochs", type=int, default=3, help="epochs of --steps batches; the first is warm-up"
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=0, help="DataLoader processes")
    p.add_argument("--compile", action="store_true")
    p.add_argument(
        "--recbole-cmd", help="shell command that times RecBole (run after ours, same machine)"
    )
    p.add_argument(
        "--recbole-json", help="the JSON that command writes (speed.train_examples_per_s)"
    )
    p.add_argument("--name", default="train_speed")
    p.add_argument("--variant", default="", help="label of this machine/setting in the rows")
    p.add_argument(
        "--merge", action="store_true", help="append rows to an existing result of the same name"
    )
    args = p.parse_args()
    if args.prepare:
        prepare(args.prepare, args.split)
        return

    start = time.perf_counter()
    mine = ours(args)
    log.info("ours: %s (%.0fs)", mine, time.perf_counter() - start)
    setting = args.variant or f"{args.device}, L={args.max_len}, B={args.batch_size}"
    rows = [
        Row(
            dataset=args.dataset,
            model="shortlist sasrec",
            variant=setting,
            metrics={
                "examples_per_s": mine["examples_per_s"],
                "sequences_per_s": mine["sequences_per_s"],
            },
        )
    ]
    if args.recbole_cmd:
        subprocess.run(args.recbole_cmd, shell=True, check=True)
        rb = json.loads(Path(args.recbole_json).read_text())
        speed = rb["speed"]
        rows.append(
            Row(
                dataset=args.dataset,
                model="RecBole 1.2.1 sasrec",
                variant=setting,
                metrics={"examples_per_s": speed["train_examples_per_s"]},
            )
        )
        rows.append(
            Row(
                dataset=args.dataset,
                model="ratio",
                variant=setting,
                metrics={
                    "examples_speedup_ratio": mine["examples_per_s"] / speed["train_examples_per_s"]
                },
            )
        )
    from common import RESULTS

    path = RESULTS / f"{args.name}.json"
    if args.merge and path.exists():
        old = json.loads(path.read_text())
        rows = [Row(**r) for r in old["rows"] if r["variant"] != setting] + rows
    write_result(
        args.name,
        rows,
        command=command_line(),
        notes="examples = training targets (RecBole rows; our non-padding positions); the first epoch is warm-up",
    )


if __name__ == "__main__":
    main()
