"""Run one of RecBole 1.2.1's context-aware CTR models (DCNV2, DeepFM, ...) on a split written by
``export_ctr.py``; write its test AUC / logloss as JSON.

The baseline run side by side with ours on exactly our rows (``benchmarks/ctr.py run
--recbole-json``), beside the published anchor, which RecBole measured on its own random split.
Like ``run_sasrec.py`` it only calls RecBole from RecBole's environment (``.venv-recbole``), drives
the epochs itself with ``Trainer._train_epoch`` / ``_valid_epoch`` / ``evaluate`` and RecBole's
``early_stopping`` on valid AUC (so it can stop at ``--time-limit-s`` and keep the best model in
memory), and checks before training that RecBole loaded exactly the exported rows (sha256 of each
part's (user, item, label) rows, decoded back to our ids, against ``manifest.json``).

Defaults follow RecBole's ML-1M context benchmark set-up as far as it is published: embedding 16,
Adam at 1e-3, batch 4,096, early stopping after 10 epochs without a better valid AUC, each model's
own default hyperparameters (``recbole/properties/model/<Model>.yaml``). ``--set key=value``
(YAML values) overrides any of RecBole's config keys.

    .venv-recbole/bin/python benchmarks/recbole/run_ctr.py --data runs/recbole/data/ml-1m-ctr-shortlist \
        --model DCNV2 --seed 0 --out runs/recbole/results/ml-1m-ctr-dcnv2-s0.json
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import logging
import math
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (
    command_line,
    install_no_op_tensorboard,
    install_numpy_1_aliases,
    machine,
    recbole_config,
)

ROOT = Path(__file__).resolve().parents[2]
log = logging.getLogger("recbole.run_ctr")


def decoded_fingerprint(ds: Any) -> str:
    """sha256 of a RecBole dataset part's (user, item, label) rows in our ids (export_ctr.fingerprint)."""
    feat = ds.inter_feat
    h = hashlib.sha256()
    for field, dtype in (("user_id", np.int64), ("item_id", np.int64)):
        tokens = ds.field2id_token[field][feat[field].numpy()]
        h.update(np.ascontiguousarray(tokens.astype(np.int64).astype(dtype)).tobytes())
    h.update(np.ascontiguousarray(feat["label"].numpy().astype(np.float32)).tobytes())
    return h.hexdigest()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", type=Path, required=True, help="a folder written by export_ctr.py")
    p.add_argument("--model", default="DCNV2", help="a RecBole context-aware model class name")
    p.add_argument("--seed", type=int, default=2020)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--embedding-size", type=int, default=16)
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--stopping-step", type=int, default=10)
    p.add_argument("--time-limit-s", type=float, default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--set", action="append", default=[], help="RecBole config KEY=VALUE (YAML)")
    p.add_argument("--work-dir", type=Path, default=ROOT / "runs" / "recbole" / "work")
    p.add_argument("--out", type=Path, required=True, help="result JSON")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: torch sees no CUDA device")
    for pair in args.set:
        if "=" not in pair:
            p.error(f"--set takes KEY=VALUE, got {pair!r}")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    command = command_line()
    data = args.data.resolve()
    out = args.out.resolve()
    manifest = json.loads((data / "manifest.json").read_text())
    token = manifest["token"]
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

    install_no_op_tensorboard()
    numpy_aliases = install_numpy_1_aliases()
    from recbole.data import create_dataset, data_preparation
    from recbole.trainer import Trainer
    from recbole.utils import early_stopping, get_model, init_logger, init_seed

    import recbole

    overrides = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    config_dict: dict[str, Any] = {
        "data_path": str(data.parent),
        "benchmark_filename": ["train", "valid", "test"],
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "LABEL_FIELD": "label",
        "load_col": {
            "inter": ["user_id", "item_id", "label"],
            "user": ["user_id", *manifest["user_fields"]],
            "item": ["item_id", *manifest["item_fields"]],
        },
        "train_neg_sample_args": None,
        "embedding_size": args.embedding_size,
        "epochs": args.epochs,
        "train_batch_size": args.batch_size,
        "learner": "adam",
        "learning_rate": args.lr,
        "stopping_step": args.stopping_step,
        "seed": args.seed,
        "reproducibility": True,
        "eval_args": {
            "split": {"RS": [0.8, 0.1, 0.1]},
            "order": "RO",
            "group_by": None,
            "mode": "labeled",
        },
        "metrics": ["AUC", "LogLoss"],
        "valid_metric": "AUC",
        "valid_metric_bigger": True,
        "eval_batch_size": 65536,
        "metric_decimal_place": 10,
        **overrides,
    }
    config = recbole_config(args.model, token, config_dict, args.work_dir, args.device == "cuda")
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    parts = {"train": train_data.dataset, "valid": valid_data.dataset, "test": test_data.dataset}
    for part, ds in parts.items():
        if len(ds.inter_feat) != manifest["rows"][part]:
            raise RuntimeError(
                f"RecBole loaded {len(ds.inter_feat)} {part} rows, the export has {manifest['rows'][part]}."
            )
        if decoded_fingerprint(ds) != manifest["fingerprints"][part]:
            raise RuntimeError(
                f"RecBole's {part} rows differ from the export's (fingerprint mismatch)."
            )
    log.info("RecBole loaded the exported rows exactly: %s", manifest["rows"])

    init_seed(config["seed"], config["reproducibility"])
    model = get_model(args.model)(config, train_data.dataset).to(config["device"])
    trainer = Trainer(config, model)
    t_start = time.perf_counter()
    deadline = t_start + args.time_limit_s if args.time_limit_s else math.inf
    epochs: list[dict[str, Any]] = []
    best_score, bad, best_state, best_epoch, stopped_by = -math.inf, 0, None, -1, "epochs"
    for epoch in range(args.epochs):
        if time.perf_counter() >= deadline:
            stopped_by = "time_limit"
            break
        t0 = time.perf_counter()
        loss = trainer._train_epoch(train_data, epoch, show_progress=False)
        train_s = time.perf_counter() - t0
        score, result = trainer._valid_epoch(valid_data, show_progress=False)
        best_score, bad, stop, improved = early_stopping(
            score, best_score, bad, args.stopping_step, bigger=True
        )
        if improved:
            best_state, best_epoch = copy.deepcopy(model.state_dict()), epoch
        record = {
            "epoch": epoch,
            "train_s": round(train_s, 2),
            "loss": float(loss),
            "valid": dict(result),
        }
        epochs.append(record)
        log.info("epoch %d: %s", epoch, record)
        if stop:
            stopped_by = "early_stopping"
            break
    if best_state is None:
        raise RuntimeError("no epoch finished: raise --time-limit-s")
    model.load_state_dict(best_state)
    test = dict(trainer.evaluate(test_data, load_best_model=False, show_progress=False))
    log.info("test (epoch %d): %s", best_epoch, test)
    result = {
        "name": f"recbole_{args.model.lower()}_{token}",
        "command": command,
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": machine(config["device"]),
        "versions": {
            "recbole": recbole.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "numpy_1_aliases_added": numpy_aliases,
        "model": args.model,
        "dataset": manifest["dataset"],
        "token": token,
        "rows": manifest["rows"],
        "fields": {"user": manifest["user_fields"], "item": manifest["item_fields"]},
        "config": {
            "seed": args.seed,
            "lr": args.lr,
            "batch_size": args.batch_size,
            "embedding_size": args.embedding_size,
            "stopping_step": args.stopping_step,
            "time_limit_s": args.time_limit_s,
            "overrides": overrides,
            "model": {
                k: config[k]
                for k in (
                    "mlp_hidden_size",
                    "dropout_prob",
                    "cross_layer_num",
                    "reg_weight",
                    "mixed",
                    "structure",
                )
                if k in config.final_config_dict
            },
        },
        "epochs_run": len(epochs),
        "best_epoch": best_epoch,
        "stopped_by": stopped_by,
        "train_s": round(time.perf_counter() - t_start, 1),
        "test": {"auc": float(test["auc"]), "logloss": float(test["logloss"])},
        "valid_auc": float(best_score),
        "epochs": epochs,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, out)
    log.info("wrote %s", out)
    return result


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    main()
