"""Run RecBole 1.2.1's SASRec on a split written by export.py; write test metrics and training speed as JSON.

RecBole is an external baseline: this script only calls it (Config, create_dataset, data_preparation,
SASRec, Trainer) from its own environment (``.venv-recbole``, see setup.sh), never the project's.
It drives the epochs itself, with RecBole's ``Trainer._train_epoch`` / ``_valid_epoch`` /
``evaluate`` and ``early_stopping`` (the steps of ``Trainer.fit``), so that it can time each epoch,
cap the steps (``--max-steps``) or the wall time (``--time-limit-s``), and keep the best model in
memory. ``--checkpoint PATH`` also writes, after every whole epoch, the state to resume from (model,
optimizer, RecBole's shuffling generator, the random states, the best model so far and the epoch
records; atomically, ``harness.save_checkpoint``): a later call with the same path continues the run,
so a run longer than one time-limited call spans several (TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 is set
for RecBole's own loaders). Before importing RecBole it gives it a no-op ``torch.utils.tensorboard``
(no tensorboard package needed) and, on numpy >= 2, the three numpy 1.x aliases RecBole's Config
reads (``np.float_``, ``np.complex_``, ``np.unicode_``); ``--check-install`` only imports and prints
the versions. Before training it checks that RecBole loaded exactly the exported rows (fingerprints
of manifest.json) and exactly our N items.

Evaluation, as in RecBole 1.2.1 (checked in its code): full sort over all N items; the padding
column is set to -inf (``Trainer._full_sort_batch_eval``); history items are NOT masked for
sequential models (``FullSortEvalDataLoader.collate_fn`` returns ``history_index=None`` when
``MODEL_TYPE`` is sequential); the top-k comes from ``torch.topk`` (``evaluator/collector.py``),
so exact score ties fall where torch.topk puts them. One target per row, so Recall@K = Hit@K.
Those numbers are the JSON's ``test`` (and each epoch's ``valid``).

Our evaluation of the same model, beside RecBole's (``test_ours_unmasked``, ``test_ours_masked``,
each epoch's ``valid_ours_*``): the harness iterates RecBole's eval DataLoader itself, takes
``model.full_sort_predict(interaction)`` (B, n_items) in RecBole's internal item ids, sets the
padding column to -inf and permutes the columns into our item indices (RecBole's ``field2id_token``:
the export's tokens are our indices), so column i is our item i, 1..N. It decodes each batch's
history (``item_id_list``, the exported row's history, at most ``max_len`` items) and target the
same way and ranks as ``shortlist.eval.metrics.rank_of_target`` (optimistic ties): rank = the number
of candidates with a strictly greater score than the target, a target scored -inf gets rank N. Masked
= the row's history items scored -inf first (``shortlist.eval.protocols.evaluate`` with
``exclude_history``; the ``hstu`` protocol, as generative-recommenders' ``filter_invalid_ids``), so a
target inside its own history is a miss. Metrics: the protocol's keys (hstu: hr/ndcg@10,50,200;
tiger: recall/ndcg@5,10) and mrr, NDCG@k = 1/log2(rank + 2) for rank < k. The decoded rows must give
the manifest's fingerprint (the ranked rows are exactly the exported ones, in our ids).
``--early-stop-on`` picks the valid NDCG@10 that drives early stopping and the best epoch: ``masked``
(default for ``hstu``), ``unmasked`` or ``recbole`` (RecBole's evaluator; default otherwise).

Examples::

    # TIGER protocol on Beauty, trained to early stopping on valid NDCG@10
    .venv-recbole/bin/python benchmarks/recbole/run_sasrec.py --data runs/recbole/data/amazon-beauty-tiger-L20
    # training speed only: one epoch (or the first 50 steps), no evaluation
    .venv-recbole/bin/python benchmarks/recbole/run_sasrec.py --data runs/recbole/data/ml-100k-hstu-L200 \
        --speed-only --epochs 1 --max-steps 50

RecBole's own log goes to ``<work-dir>/log/``; the result JSON to ``--out`` (default
``runs/recbole/results/<token>-sasrec[-speed].json``); ``--record NAME`` also writes it through
benchmarks/common.py into benchmarks/results/NAME.json (and rebuilds BENCHMARKS.md).
"""

from __future__ import annotations

import os

# RecBole's torch.load of whole checkpoints needs it with torch >= 2.6 (weights_only by default).
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

import argparse
import copy
import hashlib
import importlib.metadata
import json
import logging
import math
import platform
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (
    command_line,
    install_no_op_tensorboard,
    install_numpy_1_aliases,
    load_checkpoint,
    machine,
    recbole_config,
    rng_state,
    save_checkpoint,
    set_rng_state,
)

ROOT = Path(__file__).resolve().parents[2]
log = logging.getLogger("recbole.run_sasrec")

# Metrics of each protocol (RecBole metric names, cut-offs); valid metric for early stopping: NDCG@10.
PROTOCOL_METRICS: dict[str, tuple[list[str], list[int]]] = {
    "tiger": (["Recall", "NDCG"], [5, 10]),
    "hstu": (["Hit", "NDCG"], [10, 50, 200]),
}
# The same metrics under our keys, in the order of shortlist.eval.protocols (cut-off, then metric), + mrr.
OUR_METRIC_KEYS: dict[str, tuple[str, ...]] = {
    "tiger": ("recall@5", "ndcg@5", "recall@10", "ndcg@10", "mrr"),
    "hstu": ("hr@10", "ndcg@10", "hr@50", "ndcg@50", "hr@200", "ndcg@200", "mrr"),
}
# Our protocols' rule for seen items (shortlist.eval.protocols: hstu masks, tiger does not).
PROTOCOL_MASKS_HISTORY = {"hstu": True, "tiger": False}
EARLY_STOP_CHOICES = ("masked", "unmasked", "recbole")


class CountedBatches:
    """Iterate a RecBole training DataLoader, stopping after ``max_steps`` batches or at ``deadline``.

    Counts batches, examples (rows) and the seconds spent waiting for RecBole's data pipeline
    (its DataLoader collates every batch in this process: ``worker: 0``).
    """

    def __init__(
        self, loader: Any, max_steps: float = math.inf, deadline: float = math.inf
    ) -> None:
        self.loader = loader
        self.max_steps = max_steps
        self.deadline = deadline
        self.steps = 0
        self.examples = 0
        self.data_s = 0.0
        self.cut_short = False

    def __iter__(self) -> Iterator[Any]:
        it = iter(self.loader)
        while True:
            if self.steps >= self.max_steps or time.perf_counter() >= self.deadline:
                self.cut_short = self.steps < len(self.loader)  # False when the cap fell on the end
                return
            t0 = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                return
            self.data_s += time.perf_counter() - t0
            self.steps += 1
            self.examples += len(batch)
            yield batch

    def __len__(self) -> int:
        return int(min(len(self.loader), self.max_steps))

    def __getattr__(self, name: str) -> Any:  # e.g. ``shuffle`` / ``sampler`` read by the trainer
        return getattr(self.loader, name)


def decode_examples(ds: Any) -> dict[str, np.ndarray]:
    """RecBole's loaded rows back in our indices: users, history lengths, history values, targets."""
    return decode_rows(ds.inter_feat, ds.field2id_token["item_id"], ds.field2id_token["user_id"])


def decode_rows(
    inter: Any, item_tokens: np.ndarray, user_tokens: np.ndarray
) -> dict[str, np.ndarray]:
    """Rows of a (CPU) RecBole Interaction in our indices, through ``field2id_token``."""
    seq = inter["item_id_list"].numpy()  # (E, L) right-padded with 0
    lengths = inter["item_length"].numpy().astype(np.int64)  # (E,)
    mask = np.arange(seq.shape[1])[None, :] < lengths[:, None]
    assert (seq[~mask] == 0).all() and (seq[mask] > 0).all(), (
        "padding and items overlap in item_id_list"
    )
    return {
        "users": user_tokens[inter["user_id"].numpy()].astype(np.int64),
        "lengths": lengths,
        "values": item_tokens[seq[mask]].astype(np.int64),
        "targets": item_tokens[inter["item_id"].numpy()].astype(np.int64),
    }


def fingerprint(parts: dict[str, np.ndarray]) -> str:
    """The same sha256 as export.py's ``fingerprint`` (users, lengths, values, targets as <i8)."""
    digest = hashlib.sha256()
    for key in ("users", "lengths", "values", "targets"):
        digest.update(np.ascontiguousarray(parts[key], dtype="<i8").tobytes())
    return digest.hexdigest()


def verify_loaded(manifest: dict[str, Any], dataset: Any, splits: dict[str, Any]) -> dict[str, Any]:
    """Check that RecBole loaded exactly the exported examples and our item vocabulary."""
    n_items = dataset.item_num - 1  # minus [PAD]
    if n_items != manifest["num_items"]:
        raise RuntimeError(
            f"RecBole's item vocabulary has {n_items} items, the split {manifest['num_items']}."
        )
    report: dict[str, Any] = {"recbole_items": n_items}
    for name, ds in splits.items():
        got = fingerprint(decode_examples(ds))
        if len(ds) != manifest["rows"][name] or got != manifest["fingerprints"][name]:
            raise RuntimeError(
                f"RecBole's {name} rows differ from the export: {len(ds)} rows (exported "
                f"{manifest['rows'][name]}), fingerprint {got[:12]} vs {manifest['fingerprints'][name][:12]}."
            )
        report[f"{name}_rows"] = len(ds)
    report["fingerprints_match"] = True
    return report


class ItemIdMap:
    """RecBole's internal item ids <-> our item indices (the export's tokens), as index tensors.

    ``to_ours[j]`` = our index of internal id j (``[PAD]`` -> 0); ``to_internal[i]`` = internal id of
    our item i (0 -> 0), so ``scores[:, to_internal]`` puts our item i in column i. Both are checked
    to be permutations of 0..N.
    """

    def __init__(self, dataset: Any, device: torch.device) -> None:
        tokens = dataset.field2id_token["item_id"]  # internal id -> token (str); 0 = '[PAD]'
        if tokens[0] != "[PAD]":
            raise RuntimeError(f"RecBole's item id 0 is {tokens[0]!r}, not '[PAD]'.")
        n_items = len(tokens) - 1
        to_ours = np.zeros(n_items + 1, dtype=np.int64)
        to_ours[1:] = tokens[1:].astype(np.int64)
        if not np.array_equal(np.sort(to_ours[1:]), np.arange(1, n_items + 1)):
            raise RuntimeError(
                f"RecBole's item tokens are not our indices 1..{n_items} (each exactly once)."
            )
        to_internal = np.empty(n_items + 1, dtype=np.int64)
        to_internal[to_ours] = np.arange(n_items + 1)
        self.n_items = n_items
        self.item_tokens = tokens
        self.user_tokens = dataset.field2id_token["user_id"]
        self.to_ours = torch.from_numpy(to_ours).to(device)
        self.to_internal = torch.from_numpy(to_internal).to(device)


def rank_of_target(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(B,) 0-based ranks, as ``shortlist.eval.metrics.rank_of_target(ties="optimistic")``.

    scores (B, N+1) over our items (column 0 = padding, -inf); targets (B,) in 1..N. Rank = number of
    candidates with a strictly greater score; a target scored -inf (masked) gets N, a miss everywhere.
    """
    n_items = scores.shape[1] - 1
    target_scores = scores.gather(1, targets[:, None])  # (B, 1)
    if torch.isnan(target_scores).any():
        raise ValueError("A target's score is NaN.")
    ranks = (scores > target_scores).sum(dim=1)  # (B,)
    return torch.where(target_scores[:, 0] == float("-inf"), n_items, ranks)


def metrics_from_ranks(ranks: np.ndarray, keys: tuple[str, ...]) -> dict[str, float]:
    """hr@k = recall@k = mean(rank < k), ndcg@k = mean(1/log2(rank + 2) if rank < k), mrr = mean(1/(rank + 1))."""
    r = ranks.astype(np.float64)
    out: dict[str, float] = {}
    for key in keys:
        name, _, cut = key.partition("@")
        if name == "mrr":
            out[key] = float(np.mean(1.0 / (r + 1.0)))
        elif name in ("hr", "recall"):
            out[key] = float(np.mean(r < int(cut)))
        elif name == "ndcg":
            out[key] = float(np.mean(np.where(r < int(cut), 1.0 / np.log2(r + 2.0), 0.0)))
        else:
            raise ValueError(f"Unknown metric key {key!r}.")
    return out


@torch.no_grad()
def evaluate_ours(
    model: Any,
    loader: Any,
    ids: ItemIdMap,
    keys: tuple[str, ...],
    expected_fingerprint: str,
    device: torch.device,
) -> dict[str, Any]:
    """Our metrics of the model on a RecBole full-sort eval DataLoader, history unmasked and masked.

    Returns ``{"unmasked": {...}, "masked": {...}, "info": {...}}``; ``info`` counts the rows, the
    targets found in their own history (misses when masked) and the targets whose (unmasked) score
    ties another candidate's (where RecBole's torch.topk order may differ from our optimistic rank).
    Raises if the decoded rows are not the exported ones (manifest fingerprint).
    """
    t0 = time.perf_counter()
    was_training = model.training
    model.eval()
    ranks: dict[str, list[torch.Tensor]] = {"unmasked": [], "masked": []}
    rows: list[dict[str, np.ndarray]] = []
    in_history = ties = 0
    try:
        for interaction, _history_index, _positive_u, _positive_i in loader:
            rows.append(decode_rows(interaction, ids.item_tokens, ids.user_tokens))
            interaction = interaction.to(device)
            internal = model.full_sort_predict(interaction)  # (B, N+1), RecBole's item ids
            if tuple(internal.shape) != (len(interaction), ids.n_items + 1):
                raise RuntimeError(
                    f"full_sort_predict returned shape {tuple(internal.shape)}; expected "
                    f"({len(interaction)}, {ids.n_items + 1})."
                )
            scores = internal[:, ids.to_internal]  # (B, N+1) copy: column i = our item i
            scores[:, 0] = float("-inf")
            history = ids.to_ours[interaction["item_id_list"]]  # (B, L) our items, 0 = padding
            targets = ids.to_ours[interaction["item_id"]]  # (B,)
            ranks["unmasked"].append(rank_of_target(scores, targets).cpu())
            masked = scores.scatter(1, history, float("-inf"))  # padding 0 hits column 0 (-inf)
            ranks["masked"].append(rank_of_target(masked, targets).cpu())
            in_history += int((history == targets[:, None]).any(dim=1).sum())
            target_scores = scores.gather(1, targets[:, None])
            ties += int(((scores == target_scores).sum(dim=1) > 1).sum())
    finally:
        model.train(was_training)
    decoded = {key: np.concatenate([r[key] for r in rows]) for key in rows[0]}
    got = fingerprint(decoded)
    if got != expected_fingerprint:
        raise RuntimeError(
            f"The rows ranked by evaluate_ours differ from the export: fingerprint {got[:12]} vs "
            f"{expected_fingerprint[:12]}."
        )
    out: dict[str, Any] = {
        name: metrics_from_ranks(torch.cat(r).numpy(), keys) for name, r in ranks.items()
    }
    out["info"] = {
        "rows": len(decoded["targets"]),
        "target_in_history": in_history,
        "target_ties_unmasked": ties,
        "fingerprint_match": True,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    return out


def our_keys(result: dict[str, float]) -> dict[str, float]:
    """RecBole's metric keys ('hit@10', 'ndcg@10', 'recall@10') in ours ('hr@10', ...)."""
    return {k.replace("hit@", "hr@"): float(v) for k, v in result.items()}


def check_install() -> str:
    """Import what this script uses from RecBole; return the versions it runs with."""
    install_no_op_tensorboard()
    aliases = install_numpy_1_aliases()
    import pandas
    import recbole.config
    import recbole.data
    import recbole.model.sequential_recommender.sasrec
    import recbole.trainer

    import recbole

    return (
        f"recbole {recbole.__version__} | numpy {np.__version__} | pandas {pandas.__version__} | "
        f"torch {torch.__version__} (cuda: {torch.cuda.is_available()}) | Python {platform.python_version()}"
        + (f" | numpy 1.x aliases added: {', '.join(aliases)}" if aliases else "")
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--data",
        type=Path,
        required=True,
        help="a folder written by export.py (with manifest.json)",
    )
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument(
        "--max-steps", type=int, default=None, help="stop training after this many batches in all"
    )
    p.add_argument(
        "--time-limit-s", type=float, default=None, help="stop training after this many seconds"
    )
    p.add_argument(
        "--stopping-step",
        type=int,
        default=10,
        help="epochs without a better valid NDCG@10 before stopping",
    )
    p.add_argument(
        "--early-stop-on",
        choices=EARLY_STOP_CHOICES,
        default=None,
        help="which valid NDCG@10 drives early stopping and the best epoch: ours with history masked, "
        "ours unmasked, or RecBole's evaluator (default: masked for the hstu protocol, else recbole)",
    )
    p.add_argument("--speed-only", action="store_true", help="train only: no validation, no test")
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="resumable state, written after every whole epoch; when the file exists the run continues "
        "from it (a run longer than one time-limited call spans several)",
    )
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument(
        "--inner", type=int, default=None, help="feed-forward width (default 4 x hidden)"
    )
    p.add_argument("--dropout", type=float, default=0.5, help="hidden and attention dropout")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        help="RecBole's `worker`: DataLoader processes collating batches (0 = in this process)",
    )
    p.add_argument("--eval-batch-size", type=int, default=2048)
    p.add_argument("--seed", type=int, default=2020)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (CPU)")
    p.add_argument(
        "--work-dir",
        type=Path,
        default=ROOT / "runs" / "recbole" / "work",
        help="RecBole's log/ and saved/",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="result JSON (default runs/recbole/results/<token>-sasrec.json)",
    )
    p.add_argument(
        "--record",
        default=None,
        help="also write benchmarks/results/RECORD.json through benchmarks/common.py",
    )
    args = p.parse_args(argv)
    if args.checkpoint is not None:  # recbole_config() changes into --work-dir
        args.checkpoint = args.checkpoint.resolve()
    for name in ("epochs", "batch_size", "eval_batch_size", "hidden", "layers", "heads", "threads"):
        if getattr(args, name) < 1:
            raise ValueError(
                f"The '--{name.replace('_', '-')}' parameter must be an int >= 1. Got {getattr(args, name)} instead."
            )
    if args.max_steps is not None and args.max_steps < 1:
        raise ValueError(
            f"The '--max-steps' parameter must be an int >= 1. Got {args.max_steps} instead."
        )
    if args.hidden % args.heads:
        raise ValueError(
            f"The '--hidden' parameter ({args.hidden}) must be divisible by '--heads' ({args.heads})."
        )
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    command = command_line()
    data = args.data.resolve()
    manifest = json.loads((data / "manifest.json").read_text())
    token, protocol, max_len = manifest["token"], manifest["protocol"], manifest["max_len"]
    metrics, topk = PROTOCOL_METRICS[protocol]
    ours_keys = OUR_METRIC_KEYS[protocol]
    early_stop_on = args.early_stop_on or (
        "masked" if PROTOCOL_MASKS_HISTORY[protocol] else "recbole"
    )
    out = (
        args.out
        or ROOT
        / "runs"
        / "recbole"
        / "results"
        / f"{token}-sasrec{'-speed' if args.speed_only else ''}.json"
    ).resolve()
    device_name = (
        "cuda"
        if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
        else "cpu"
    )
    if device_name == "cuda" and not torch.cuda.is_available():
        raise ValueError("The '--device' parameter is 'cuda' but torch sees no CUDA device.")
    torch.set_num_threads(args.threads)

    install_no_op_tensorboard()
    numpy_aliases = install_numpy_1_aliases()
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender.sasrec import SASRec
    from recbole.trainer import Trainer
    from recbole.utils import early_stopping, init_logger, init_seed

    import recbole

    builtin = Path(recbole.__file__).parent / "properties" / "dataset" / f"{token}.yaml"
    if builtin.exists():
        raise ValueError(
            f"The dataset name {token!r} is one of RecBole's built-ins ({builtin}); export with another --token."
        )

    config_dict = {
        # data: the pre-split files, item_id_list remapped with item_id (RecBole issue #1813)
        "data_path": str(data.parent),
        "benchmark_filename": ["train", "valid", "test"],
        "alias_of_item_id": ["item_id_list"],
        "load_col": {"inter": ["user_id", "item_id_list", "item_id"], "item": ["item_id"]},
        "MAX_ITEM_LIST_LENGTH": max_len,
        # model
        "n_layers": args.layers,
        "n_heads": args.heads,
        "hidden_size": args.hidden,
        "inner_size": args.inner or 4 * args.hidden,
        "hidden_dropout_prob": args.dropout,
        "attn_dropout_prob": args.dropout,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-12,
        "initializer_range": 0.02,
        "loss_type": "CE",
        "train_neg_sample_args": None,
        # training
        "epochs": args.epochs,
        "train_batch_size": args.batch_size,
        "learner": "adam",
        "learning_rate": args.lr,
        "weight_decay": 0.0,
        "stopping_step": args.stopping_step,
        "eval_step": 1,
        "shuffle": True,
        "worker": args.workers,
        "seed": args.seed,
        "reproducibility": True,
        # evaluation: full sort over all items, the protocol's metrics
        "eval_args": {
            "split": {"LS": "valid_and_test"},
            "order": "TO",
            "group_by": "user",
            "mode": "full",
        },
        "metrics": metrics,
        "topk": topk,
        "valid_metric": "NDCG@10",
        "valid_metric_bigger": True,
        "eval_batch_size": args.eval_batch_size,
        "metric_decimal_place": 10,
    }
    config = recbole_config("SASRec", token, config_dict, args.work_dir, device_name == "cuda")
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    t_load = time.perf_counter()
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    load_s = time.perf_counter() - t_load
    verified = verify_loaded(
        manifest,
        dataset,
        {"train": train_data.dataset, "valid": valid_data.dataset, "test": test_data.dataset},
    )
    log.info("RecBole loaded the exported split exactly: %s", verified)

    init_seed(config["seed"], config["reproducibility"])
    model = SASRec(config, train_data.dataset).to(config["device"])
    trainer = Trainer(config, model)
    device = config["device"]
    ids = ItemIdMap(dataset, device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    load_before = (
        os.getloadavg()
    )  # the CPU may be shared: timings are only as good as the load allows
    t_start = time.perf_counter()
    deadline = t_start + args.time_limit_s if args.time_limit_s else math.inf
    steps_left = args.max_steps if args.max_steps else math.inf
    epochs: list[dict[str, Any]] = []
    best_score, bad_epochs, best_state, best_epoch, stopped_by = -math.inf, 0, None, None, "epochs"
    start_epoch, finished, resumed_from = 0, False, None
    run_id = {
        "token": token,
        "train_fingerprint": manifest["fingerprints"]["train"],
        "seed": args.seed,
        "model": [args.hidden, args.layers, args.heads, args.inner, args.dropout],
        "optim": [args.lr, args.batch_size],
        "stopping": [args.stopping_step, early_stop_on],
    }
    saved = load_checkpoint(args.checkpoint, run_id) if args.checkpoint else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        trainer.optimizer.load_state_dict(saved["optimizer"])
        train_data.generator.set_state(saved["shuffle_generator"])
        set_rng_state(saved["rng"])
        epochs, start_epoch, finished = saved["epochs"], saved["next_epoch"], saved["finished"]
        best_score, bad_epochs, best_epoch = (
            saved["best_score"],
            saved["bad_epochs"],
            saved["best_epoch"],
        )
        best_state, stopped_by = saved["best_state"], saved["stopped_by"]
        resumed_from = start_epoch
        log.info("resumed %s at epoch %d (finished: %s)", args.checkpoint, start_epoch, finished)
    for epoch in range(start_epoch, args.epochs if not finished else start_epoch):
        if steps_left <= 0 or time.perf_counter() >= deadline:  # the cap fell on an epoch's end
            stopped_by = "max_steps" if steps_left <= 0 else "time_limit"
            break
        batches = CountedBatches(train_data, steps_left, deadline)
        t0 = time.perf_counter()
        loss = trainer._train_epoch(batches, epoch, show_progress=False)
        sync()
        train_s = time.perf_counter() - t0
        steps_left -= batches.steps
        record: dict[str, Any] = {
            "epoch": epoch,
            "steps": batches.steps,
            "examples": batches.examples,
            "train_s": round(train_s, 3),
            "data_s": round(batches.data_s, 3),
            "complete": not batches.cut_short,
            "loss": float(loss) / max(batches.steps, 1) if loss is not None else None,
            "examples_per_s": batches.examples / train_s if train_s > 0 else None,
        }
        if not args.speed_only and batches.steps:
            t1 = time.perf_counter()
            recbole_score, result = trainer._valid_epoch(valid_data, show_progress=False)
            record["valid_s"] = round(time.perf_counter() - t1, 3)
            record["valid"] = our_keys(result)
            ours = evaluate_ours(
                model, valid_data, ids, ours_keys, manifest["fingerprints"]["valid"], device
            )
            record["valid_ours_s"] = ours["info"]["seconds"]
            record["valid_ours_unmasked"] = ours["unmasked"]
            record["valid_ours_masked"] = ours["masked"]
            score = recbole_score if early_stop_on == "recbole" else ours[early_stop_on]["ndcg@10"]
            best_score, bad_epochs, stop, improved = early_stopping(
                score, best_score, bad_epochs, args.stopping_step, bigger=True
            )
            if improved:
                best_state, best_epoch = copy.deepcopy(model.state_dict()), epoch
        else:
            stop = False
        epochs.append(record)
        log.info(
            "epoch %d: %s",
            epoch,
            {k: v for k, v in record.items() if not k.startswith("valid")}
            | {
                f"valid_{name}": {k: round(v, 6) for k, v in record[key].items()}
                for name, key in (
                    ("recbole", "valid"),
                    ("unmasked", "valid_ours_unmasked"),
                    ("masked", "valid_ours_masked"),
                )
                if key in record
            },
        )
        if stop:
            stopped_by = "early_stopping"
        elif batches.cut_short:
            stopped_by = "max_steps" if steps_left <= 0 else "time_limit"
        elif epoch + 1 == args.epochs:
            stopped_by = "epochs"
        if args.checkpoint and not args.speed_only:
            # only early stopping ends a run for good: a resumed call with a larger --epochs goes on,
            # and an epoch cut short by a cap is redone from the last whole one
            finished = bool(stop)
            if finished or not batches.cut_short:
                save_checkpoint(
                    args.checkpoint,
                    {
                        "run": run_id,
                        "model": model.state_dict(),
                        "optimizer": trainer.optimizer.state_dict(),
                        "shuffle_generator": train_data.generator.get_state(),
                        "rng": rng_state(),
                        "epochs": epochs,
                        "next_epoch": epoch + 1,
                        "finished": finished,
                        "best_score": best_score,
                        "bad_epochs": bad_epochs,
                        "best_epoch": best_epoch,
                        "best_state": best_state,
                        "stopped_by": stopped_by,
                    },
                )
        if stop or batches.cut_short:
            break

    test: dict[str, float] = {}
    test_ours: dict[str, Any] = {"unmasked": {}, "masked": {}, "info": {}}
    if not args.speed_only and best_state is not None:
        model.load_state_dict(best_state)
        t2 = time.perf_counter()
        test = our_keys(trainer.evaluate(test_data, load_best_model=False, show_progress=False))
        test_s = time.perf_counter() - t2
        test_ours = evaluate_ours(
            model, test_data, ids, ours_keys, manifest["fingerprints"]["test"], device
        )
        log.info("test (epoch %d), RecBole's evaluator: %s", best_epoch, test)
        log.info("test (epoch %d), ours, history not masked: %s", best_epoch, test_ours["unmasked"])
        log.info("test (epoch %d), ours, history masked: %s", best_epoch, test_ours["masked"])
        log.info("test, ours: %s", test_ours["info"])
    else:
        test_s = 0.0
    # the rows_table (project schema) holds the numbers of the protocol's own rule
    protocol_masks = PROTOCOL_MASKS_HISTORY[protocol]
    test_protocol = test_ours["masked" if protocol_masks else "unmasked"]

    examples = sum(e["examples"] for e in epochs)
    train_s = sum(e["train_s"] for e in epochs)
    full = [e for e in epochs if e["complete"]]
    throughput = examples / train_s if train_s > 0 else float("nan")
    epoch_s = (
        (sum(e["train_s"] for e in full) / len(full))
        if full
        else manifest["rows"]["train"] / throughput
    )
    speed = {
        "train_examples_per_s": throughput,
        "epoch_s": epoch_s,
        "epoch_s_estimated": not full,
        "data_fraction": sum(e["data_s"] for e in epochs) / train_s
        if train_s > 0
        else float("nan"),
        "steps": sum(e["steps"] for e in epochs),
        "train_examples": examples,
        "train_s": train_s,
    }
    result = {
        "name": f"recbole_sasrec_{token}",
        "command": command,
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": machine(device),
        "device": str(device)
        + (f" ({torch.cuda.get_device_name(0)})" if device.type == "cuda" else ""),
        "threads": torch.get_num_threads(),
        "loadavg_1min": {
            "before_training": round(load_before[0], 2),
            "after": round(os.getloadavg()[0], 2),
            "cores": len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else os.cpu_count(),
        },
        "numpy_1_aliases_added": numpy_aliases,
        "versions": {
            "recbole": recbole.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
            "pandas": importlib.metadata.version("pandas"),
        },
        "dataset": manifest["dataset"],
        "protocol": protocol,
        "token": token,
        "max_len": max_len,
        "train_examples_mode": manifest["train_examples"],
        "rows": manifest["rows"],
        "config": {
            "hidden": args.hidden,
            "layers": args.layers,
            "heads": args.heads,
            "inner": args.inner or 4 * args.hidden,
            "dropout": args.dropout,
            "loss": "CE (full softmax)",
            "optimizer": "adam",
            "lr": args.lr,
            "batch_size": args.batch_size,
            "epochs": args.epochs,
            "max_steps": args.max_steps,
            "time_limit_s": args.time_limit_s,
            "stopping_step": args.stopping_step,
            "early_stop_on": early_stop_on,
            "seed": args.seed,
            "speed_only": args.speed_only,
        },
        "evaluation": {
            "candidates": "all items 1..N (full sort)",
            # of `test` / `valid` (RecBole's evaluator); benchmarks/seqrec.py reads it
            "history_masked": False,
            "metrics": [f"{m.lower().replace('hit', 'hr')}@{k}" for m in metrics for k in topk],
            "valid_metric": "ndcg@10",
            "early_stop_on": early_stop_on,
            "early_stop_metric": {
                "recbole": "valid.ndcg@10 (RecBole's evaluator, history not masked)",
                "unmasked": "valid_ours_unmasked.ndcg@10",
                "masked": "valid_ours_masked.ndcg@10",
            }[early_stop_on],
            "ours": {
                "keys": list(ours_keys),
                "ties": "optimistic: rank = number of candidates scored strictly higher",
                "ndcg": "1/log2(rank + 2) for rank < k",
                "scores": "model.full_sort_predict, padding -inf, columns permuted to our items 1..N",
                "masked": "the row's history (<= max_len items, as fed to the model) scored -inf; "
                "a target in its own history is a miss (rank N)",
                "protocol_rule": "masked" if protocol_masks else "unmasked",
                "test": test_ours["info"],
            },
        },
        "verified": verified,
        "load_s": round(load_s, 2),
        "epochs_run": len(epochs),
        "best_epoch": best_epoch,
        "stopped_by": stopped_by,
        "resumed_at_epoch": resumed_from,
        "speed": speed,
        "test": test,
        "test_ours_unmasked": test_ours["unmasked"],
        "test_ours_masked": test_ours["masked"],
        "test_s": round(test_s, 2),
        "epochs": epochs,
        "rows_table": [
            {
                "dataset": manifest["dataset"],
                "protocol": protocol,
                "model": "recbole-sasrec",
                "variant": f"L{max_len}, {args.layers}x{args.hidden}, {args.heads} heads, {device.type}"
                + (
                    ", speed only"
                    if args.speed_only
                    else f", {len(epochs)} epochs, early stop on {early_stop_on}, "
                    f"our evaluator (history {'masked' if protocol_masks else 'not masked'})"
                ),
                "metrics": test_protocol | {"train_examples_per_s": throughput, "epoch_s": epoch_s},
            }
        ],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    log.info("wrote %s", out)
    if args.record:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from common import Row, write_result

        write_result(
            args.record,
            [Row(**r) for r in result["rows_table"]],
            command=command,
            extra={
                k: result[k]
                for k in (
                    "device",
                    "threads",
                    "versions",
                    "speed",
                    "test",
                    "test_ours_unmasked",
                    "test_ours_masked",
                    "verified",
                )
            },
        )
    print(
        json.dumps(
            {
                "test": test,
                "test_ours_unmasked": test_ours["unmasked"],
                "test_ours_masked": test_ours["masked"],
                "early_stop_on": early_stop_on,
                "best_epoch": best_epoch,
                "speed": speed,
                "epochs_run": len(epochs),
                "stopped_by": stopped_by,
            },
            indent=2,
        )
    )
    return result


if __name__ == "__main__":
    if sys.argv[1:] == ["--check-install"]:
        print(check_install())
        sys.exit(0)
    main()  # logging is set up by RecBole's init_logger (console + <work-dir>/log/SASRec/*.log)
