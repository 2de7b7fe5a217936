"""Started by tests/test_trainer.py under torchrun (2 CPU processes, gloo): OUT [LENGTH_GROUPS]."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from shortlist.data.loader import make_loader
from shortlist.data.sequences import Jagged
from shortlist.models import build_model
from shortlist.train.trainer import TrainConfig, Trainer


def main(out: Path, length_groups: int) -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 12, 64)
    values = rng.integers(1, 21, int(lengths.sum()))
    data = Jagged.from_lengths(values, lengths)
    torch.manual_seed(0)
    model = build_model("sasrec", num_items=20, max_len=10, dim=16, num_heads=2, dropout=0.0)
    cfg = TrainConfig(
        epochs=2,
        batch_size=8,
        lr=0.01,
        num_workers=0,
        progress=False,
        length_groups=length_groups,  # > 1: the groups but the last skip DDP's gradient sync
    )
    result = Trainer(model, data, cfg, out / "run", evaluate=lambda m: {"ndcg@10": 0.0}).fit()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    torch.save(model.state_dict(), out / f"rank{rank}.pt")
    if rank == 0:
        single = make_loader(
            data, batch_size=8, max_len=10, num_negatives=0, shuffle=True, seed=0, num_workers=0
        )
        sharded = make_loader(
            data,
            batch_size=8,
            max_len=10,
            num_negatives=0,
            shuffle=True,
            seed=0,
            num_workers=0,
            rank=0,
            world_size=world,
        )
        summary = {
            "epochs_run": result.epochs_run,
            "world_size": world,
            "batches_single": len(single),
            "batches_per_rank": len(sharded),
        }
        (out / "summary.json").write_text(json.dumps(summary))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 1)
