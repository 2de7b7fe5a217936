"""CTR ranking quality: CAN, DIN, DeepFM and DCNv2 over seeds on ML-1M CTR (RecBole's definition) and
Amazon Beauty behaviour CTR (DIN's), beside the anchors (ANCHORS.md section 3).

Two steps, so that the GPU box needs only NumPy and torch (no Polars, pydantic or raw data):

    # here (CPU): build the CTR dataset and save it (a few MB of NumPy)
    python benchmarks/ctr.py prepare --dataset ml-1m-ctr --out .gpu/ml-1m-ctr.npz
    python benchmarks/ctr.py prepare --dataset amazon-beauty-ctr --semantic-ids tokenize \
        --out .gpu/amazon-beauty-ctr.npz
    # there (GPU) or here: every model x seed as parallel processes, then the result file
    python benchmarks/ctr.py run --name ctr_ml1m --dataset ml-1m-ctr --data .gpu/ml-1m-ctr.npz \
        --models can,din,deepfm,dcnv2 --seeds 0,1,2,3,4 --parallel 8 --device cuda

Each model uses its frozen config ``configs/<dataset>/<model>.yaml`` (read with PyYAML only) with
``train.seed`` set; ``run`` writes ``benchmarks/results/<name>.json`` through benchmarks/common.py:
one row per seed and a mean/std row per model, then the anchors.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    Row,
    add_seed_run_args,
    glob_paths,
    mean_std,
    run_seed_jobs,
    write_run_result,
)

log = logging.getLogger("benchmarks.ctr")

# ANCHORS.md section 3: RecBole's ML-1M CTR benchmark (benchmark/hyper/context), same definition.
ANCHORS: dict[str, list[tuple[str, dict[str, float], str]]] = {
    "ml-1m-ctr": [
        ("RecBole DCNV2", {"auc": 0.8998, "logloss": 0.3119}, "RecBole benchmark/hyper/context"),
        ("RecBole DeepFM", {"auc": 0.8997, "logloss": 0.315}, "RecBole benchmark/hyper/context"),
    ],
    # CAN's own number is on Amazon Books, not Beauty: orientation only, not comparable.
    "amazon-beauty-ctr": [],
}


def prepare(args: argparse.Namespace) -> None:
    from shortlist.data.ctr import load_ctr_dataset

    params: dict[str, Any] = {}
    if args.split_seed is not None:
        if args.dataset != "ml-1m-ctr":
            raise SystemExit(
                f"--split-seed applies to ml-1m-ctr (a random 8:1:1 split), not {args.dataset}"
            )
        params["seed"] = args.split_seed
    if args.semantic_ids == "tokenize":
        params["semantic_ids"] = _tokenize(args)
    elif args.semantic_ids:
        params["semantic_ids"] = args.semantic_ids
    data = load_ctr_dataset(args.dataset, data_dir=args.data_dir, **params)
    data.save(args.out)
    log.info("%s: %s, fields %s -> %s", args.dataset, data.summary(), data.spec.names(), args.out)


def _tokenize(args: argparse.Namespace) -> str:
    """Semantic IDs of amazon-beauty with the default ``shortlist tokenize`` pipeline (TF-IDF + SVD
    text embeddings, residual k-means 3 x 256); written beside the output and returned as a path."""
    from shortlist.data.datasets import load_dataset
    from shortlist.items.pipeline import TokenizeConfig, tokenize

    folder = Path(args.out).with_suffix("").as_posix() + "-semantic_ids"
    result = tokenize(load_dataset("amazon-beauty", data_dir=args.data_dir), TokenizeConfig())
    result.semantic_ids.save(folder)
    log.info("semantic IDs: %s -> %s", result.semantic_ids, folder)
    return folder


def job(args: argparse.Namespace) -> None:
    """One (model, seed) run on a prepared dataset; writes <run_dir>/results.json."""
    from shortlist.data.ctr import CTRData
    from shortlist.train.config import apply_overrides, parse_overrides
    from shortlist.train.ctr_experiment import run_ctr
    from shortlist.train.trainer import TrainConfig

    raw = yaml.safe_load(Path(args.config).read_text())
    overrides = {"train.seed": args.seed, "train.progress": False, **parse_overrides(args.set)}
    if args.device:
        overrides["train.device"] = args.device
    cfg = apply_overrides(raw, overrides)
    data = CTRData.load(args.data)
    run_ctr(
        cfg["name"],
        cfg["dataset"]["name"],
        cfg["model"],
        TrainConfig(**cfg.get("train", {})),
        data,
        run_dir=args.run_dir,
        eval_batch_size=cfg.get("eval", {}).get("batch_size", 8192),
        resume=False,
    )


def run(args: argparse.Namespace) -> None:
    device = ["--device", args.device] if args.device else []
    runs = run_seed_jobs(__file__, args, data_args=["--data", args.data], extra=device)
    rows: list[Row] = []
    for model, per_seed in runs.results.items():
        for seed, res in per_seed:
            metrics = {
                **res["test"],
                "valid_auc": res["valid"]["auc"],
                "best_epoch": res["best_epoch"],
                "train_s": res["train_seconds"],
                "rows_per_s": res["rows_per_s"],
            }
            rows.append(Row(args.dataset, "ctr", f"shortlist {model}", f"seed={seed}", metrics))
        if not per_seed:
            continue
        results = [res for _, res in per_seed]
        summary: dict[str, float] = {}
        for key in ("auc", "gauc", "logloss"):
            summary[key], summary[f"{key}_std"] = mean_std([r["test"][key] for r in results])
        summary["valid_auc"] = mean_std([r["valid"]["auc"] for r in results])[0]
        label = f"mean of {len(results)} seeds"
        rows.append(Row(args.dataset, "ctr", f"shortlist {model}", label, summary))
    rows += recbole_ctr_rows(args.dataset, args.recbole_json)
    for method, metrics, source in ANCHORS.get(args.dataset, []):
        rows.append(Row(args.dataset, "ctr", f"anchor: {method}", source, dict(metrics)))
    write_run_result(args, runs, rows)


def recbole_name(rb: dict[str, Any]) -> str:
    """Row name of a RecBole result: the model, plus its settings where they are not the defaults."""
    cfg = rb.get("config", {})
    settings = [] if cfg.get("lr", 1e-3) == 1e-3 else [f"lr {cfg['lr']:g}"]
    settings += [f"{k} {v}" for k, v in cfg.get("overrides", {}).items()]
    return f"RecBole 1.2.1 {rb['model']}" + (f" ({', '.join(settings)})" if settings else "")


def recbole_ctr_rows(dataset: str, patterns: list[str]) -> list[Row]:
    """RecBole's models on our split (``benchmarks/recbole/run_ctr.py`` result files, globs): one row
    per seed and, per model and settings with several seeds, their mean and std. Runs with other
    settings than RecBole's defaults (a learning rate other than 1e-3, ``--set`` overrides) are
    named with them, e.g. ``RecBole 1.2.1 DeepFM (lr 0.005, dropout_prob 0.1)``."""
    per_model: dict[str, list[dict[str, Any]]] = {}
    for path in glob_paths(patterns):
        rb = json.loads(path.read_text())
        per_model.setdefault(recbole_name(rb), []).append(rb)
    rows: list[Row] = []
    for name, runs in per_model.items():
        for rb in runs:
            variant = f"seed={rb['config']['seed']}; same split; stopped by {rb['stopped_by']}"
            metrics = {**rb["test"], "valid_auc": rb["valid_auc"], "best_epoch": rb["best_epoch"]}
            rows.append(Row(dataset, "ctr", name, variant, metrics))
        if len(runs) > 1:
            summary: dict[str, float] = {}
            for key in ("auc", "logloss"):
                summary[key], summary[f"{key}_std"] = mean_std([r["test"][key] for r in runs])
            summary["valid_auc"] = mean_std([r["valid_auc"] for r in runs])[0]
            rows.append(Row(dataset, "ctr", name, f"mean of {len(runs)} seeds", summary))
    return rows


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="build a CTR dataset and save it (.npz)")
    p.add_argument("--dataset", required=True, choices=["ml-1m-ctr", "amazon-beauty-ctr"])
    p.add_argument("--out", required=True)
    p.add_argument("--data-dir")
    p.add_argument(
        "--split-seed",
        type=int,
        help="ml-1m-ctr: seed of the random 8:1:1 split (default 2020, RecBole's default seed)",
    )
    p.add_argument(
        "--semantic-ids",
        help="amazon-beauty-ctr: a SemanticIds folder (shortlist tokenize), or 'tokenize' to make one",
    )
    j = sub.add_parser("job", help="one training run (used by run)")
    j.add_argument("--config", required=True)
    j.add_argument("--data", required=True)
    j.add_argument("--seed", type=int, required=True)
    j.add_argument("--run-dir", required=True)
    j.add_argument("--device")
    j.add_argument("--set", action="append")
    r = sub.add_parser("run", help="all models x seeds in parallel, then the result file")
    r.add_argument("--data", required=True, help="the .npz written by prepare")
    r.add_argument("--device", help="cpu or cuda (default: the configs' train.device)")
    add_seed_run_args(
        r, models="can,din,deepfm,dcnv2", seeds="0,1,2,3,4", out_dir="runs/ctr",
        baseline="benchmarks/recbole/run_ctr.py",
    )  # fmt: skip
    args = parser.parse_args()
    {"prepare": prepare, "job": job, "run": run}[args.cmd](args)


if __name__ == "__main__":
    main()
