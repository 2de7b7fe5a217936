"""Training speed with ``train.length_groups``: a padded batch trained as groups of similar length.

For each ``--configs`` entry (a frozen config) and each ``--groups`` value, the trainer runs one
epoch of ``--steps`` batches from the same seed (the same batches in the same order), without
validation, and reports sequences and events a second, with the ratio to ``length_groups`` 1
from the same process. Each case trains ``--runs`` times from the same seed (the same batches, so
the same shapes) and the last run is timed: the first pays the process's and the shapes' warm-up
(CUDA context, cuBLAS, and on the GPU KSA's FlexAttention kernels, compiled for new batch
lengths). The result file is written after each config, so a run stopped by a time limit keeps
the configs it finished. Beside the times, over those batches: the share of the padded positions
that are events, without and with the groups (what the groups save, whatever the device), and on
the first batch, with dropout off, the largest difference between the gradient of the whole batch
and the groups' weighted sum (the two are the same gradient up to float rounding).

    python benchmarks/length_groups_speed.py --split .gpu/ml-latest-small.npz \
        --configs configs/ml-latest-small/elastic.yaml,configs/ml-latest-small/sasrec.yaml

The splits are made by ``benchmarks/seqrec.py prepare`` (they are not committed).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Row, write_result
from shortlist.data.batches import SequenceBatch
from shortlist.data.sequences import SequenceSplit  # no Polars: the GPU machine lacks it
from shortlist.models import Model, build_model_from_section
from shortlist.train.config import load_config
from shortlist.train.length_groups import length_groups
from shortlist.train.trainer import TrainConfig, Trainer, seed_everything, trim_padding

log = logging.getLogger("benchmarks.length_groups_speed")


def padding_shares(trainer: Trainer, steps: int, groups: int) -> tuple[float, float]:
    """Events over padded positions in the first ``steps`` batches of epoch 0: trimmed to each
    batch's longest row, and trimmed per length group."""
    loader = trainer._loader()
    loader.set_epoch(0)
    events = whole = grouped = 0
    for i, batch in enumerate(loader):
        if i >= steps:
            break
        events += int(batch.lengths.sum())
        whole += batch.lengths.numel() * int(batch.lengths.max())
        grouped += sum(
            g.lengths.numel() * int(g.lengths.max()) for g in length_groups(batch, groups)
        )
    return events / whole, events / grouped


def gradient_gap(model: Model, trainer: Trainer) -> float:
    """On the first batch with dropout off: the largest |grouped - whole| gradient entry, relative
    to the largest |whole| entry; grouped is the trainer's own step (``Trainer._accumulate`` with
    its ``length_groups``), whole the padded batch's loss."""
    loader = trainer._loader()
    loader.set_epoch(0)
    batch = next(iter(loader))
    model.to(trainer.device).eval()  # no dropout: the two ways see the same network

    def grads(step: Callable[[], object]) -> torch.Tensor:
        model.zero_grad()
        step()
        return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

    def loss(b: SequenceBatch) -> torch.Tensor:
        return model.compute_loss(b).loss

    whole = grads(lambda: loss(trim_padding(batch).to(trainer.device)).backward())
    grouped = grads(lambda: trainer._accumulate(batch, loss, model, nullcontext))
    model.zero_grad()
    model.train()
    return float((grouped - whole).abs().max() / whole.abs().max())


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--split", required=True, help="a saved split (.npz) the configs fit")
    parser.add_argument("--configs", required=True, help="comma-separated frozen configs")
    parser.add_argument("--groups", default="1,2,4", help="train.length_groups values; 1 first")
    parser.add_argument("--steps", type=int, default=20, help="batches timed per case")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument(
        "--runs", type=int, default=2, help="trainings per case from the same seed; the last timed"
    )
    parser.add_argument("--name", default="length_groups_speed")
    parser.add_argument("--no-rebuild", action="store_true")
    args = parser.parse_args()
    values = [int(v) for v in args.groups.split(",")]
    if values[0] != 1:
        parser.error("--groups: the first value must be 1 (the ratios are against it).")
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, got {args.runs}.")
    split = SequenceSplit.load(args.split)
    rows: list[Row] = []
    for path in args.configs.split(","):
        config = load_config(path)
        family = config.model["name"]
        base: dict[str, float] = {}
        for groups in values:
            train = TrainConfig(
                **{
                    **config.train,
                    "epochs": 1,
                    "max_steps_per_epoch": args.steps,
                    "patience": 0,
                    "time_limit_s": 0,
                    "num_workers": 0,
                    "progress": False,
                    "threads": args.threads,
                    "device": args.device,
                    "length_groups": groups,
                }
            )
            for _ in range(args.runs):  # the last one timed
                seed_everything(train.seed)
                model = build_model_from_section(config.model, num_items=split.num_items)
                with tempfile.TemporaryDirectory(prefix="length-groups-") as run_dir:
                    trainer = Trainer(
                        model,
                        split.train,
                        train,
                        run_dir,
                        timestamps=split.train_timestamps,
                        user_ids=split.train_users,
                    )
                    result = trainer.fit(resume=False)
            whole, grouped = padding_shares(trainer, args.steps, groups)
            metrics = {
                "sequences_per_s": result.sequences_per_s,
                "train_s": result.train_seconds,
                "events_share_trimmed": whole,
                "events_share_grouped": grouped,
            }
            if groups > 1:
                metrics["gradient_gap"] = gradient_gap(model, trainer)
            if groups == 1:
                base = metrics
            else:
                metrics["speedup_vs_1"] = metrics["sequences_per_s"] / base["sequences_per_s"]
            log.info("%s, length_groups %d: %s", path, groups, metrics)
            rows.append(
                Row(config.dataset.name, "training", family, f"length_groups {groups}", metrics)
            )
        write_result(
            args.name,
            rows,
            notes=(
                f"{args.split}; each config's train section with epochs 1, {args.steps} batches, "
                f"{args.runs} trainings a case, the last timed, "
                "no validation, seed as in the config (the same batches for every case); "
                "events_share_*: events over padded positions in those batches, each batch trimmed "
                "to its longest row, or each length group to its own; gradient_gap: on the first "
                "batch with dropout off, max |grouped - whole| over max |whole| gradient entry."
            ),
            rebuild=not args.no_rebuild,
        )


if __name__ == "__main__":
    main()
