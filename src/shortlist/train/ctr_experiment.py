"""A CTR experiment end to end: prepared CTR dataset -> ranker -> common trainer with early stopping on
validation AUC -> valid and test AUC / GAUC / log loss of the best epoch, written to a run folder.

The run folder has the layout of :mod:`shortlist.train.experiment` (``config.yaml``, ``metrics.jsonl``,
``checkpoints/last.pt``, ``best/``, ``results.json``). This module needs neither pydantic nor Polars
when the dataset is a prepared ``.npz``: ``benchmarks/ctr.py`` calls :func:`run_ctr` directly on the
GPU box.

Example:
    >>> data = CTRData.load(".gpu/ml-1m-ctr.npz")
    >>> result = run_ctr("ml-1m-can", "ml-1m-ctr", {"name": "can", ...}, TrainConfig(metric="auc"),
    ...                  data, run_dir="runs/ml-1m-can")
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from shortlist.atomic import write_json
from shortlist.data.ctr.batches import CTRLoader
from shortlist.data.ctr.dataset import CTRData
from shortlist.eval.ctr_protocol import CTR_EVAL_BATCH, evaluate_ctr
from shortlist.models.base import Model, build_model_from_section, load_model
from shortlist.models.rankers.base import Ranker
from shortlist.train.experiment import RunResult
from shortlist.train.trainer import TrainConfig, Trainer, resolve_device, seed_everything

log = logging.getLogger(__name__)

RESULTS = "results.json"
CTR_PROTOCOL = "ctr"


def build_ranker(model_section: dict[str, Any], data: CTRData) -> Ranker:
    """The config's ranker with the dataset's feature spec filled in."""
    model = build_model_from_section(model_section, features=data.spec)
    if not isinstance(model, Ranker):
        raise ValueError(
            f"Model {model_section['name']!r} is not a ranker; the 'ctr' protocol needs one of "
            "can, din, deepfm, dcnv2."
        )
    return model


def run_ctr(
    name: str,
    dataset: str,
    model_section: dict[str, Any],
    train_cfg: TrainConfig,
    data: CTRData,
    *,
    run_dir: str | Path,
    eval_batch_size: int = CTR_EVAL_BATCH,
    resume: bool = True,
) -> RunResult:
    """Train ``model_section`` (``{"name": ..., **config}``) on ``data`` and evaluate the best epoch."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if train_cfg.metric not in ("auc", "gauc", "logloss"):
        raise ValueError(
            f"A CTR run stops early on 'auc' or 'gauc' (higher is better). Got train.metric={train_cfg.metric!r}."
        )
    seed_everything(train_cfg.seed)  # the initial weights too, not only the batches
    model = build_ranker(model_section, data)
    device = resolve_device(train_cfg.device)
    log.info(
        "%s: %s, %s parameters, %s", name, data.summary(), f"{model.num_parameters():,}", device
    )

    def validate(m: Model) -> dict[str, float]:
        assert isinstance(m, Ranker)
        metrics = evaluate_ctr(m, data, "valid", batch_size=eval_batch_size, device=device).metrics
        return metrics | {"neg_logloss": -metrics["logloss"]}

    loader = CTRLoader(
        data, "train", batch_size=train_cfg.batch_size, shuffle=True, seed=train_cfg.seed
    )
    trainer = Trainer(model, loader, train_cfg, run_dir, evaluate=validate)
    start = time.perf_counter()
    result = trainer.fit(resume=resume)
    if not trainer.dist.is_main:
        return RunResult(run_dir=run_dir, valid={}, test={}, train=result)
    best = load_model(run_dir / "best").to(device)
    assert isinstance(best, Ranker)
    valid = evaluate_ctr(best, data, "valid", batch_size=eval_batch_size, device=device).metrics
    test = evaluate_ctr(best, data, "test", batch_size=eval_batch_size, device=device).metrics
    payload = {
        "name": name,
        "dataset": dataset,
        "protocol": CTR_PROTOCOL,
        "model": model_section["name"],
        "parameters": model.num_parameters(),
        "split": data.summary(),
        "features": model.config.spec.names(),
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        "stopped_by": result.stopped_by,
        "train_seconds": result.train_seconds,
        "wall_seconds": time.perf_counter() - start,
        "rows_per_s": result.sequences_per_s,
        "device": str(device),
        "valid": valid,
        "test": test,
        "data_meta": data.meta,
        "train_config": asdict(train_cfg),
    }
    write_json(run_dir / RESULTS, payload)
    return RunResult(run_dir=run_dir, valid=valid, test=test, train=result)


def reevaluate_ctr(
    run_dir: str | Path, data: CTRData, *, batch_size: int = CTR_EVAL_BATCH, device: str = "auto"
) -> tuple[dict[str, float], dict[str, float]]:
    """(valid, test) metrics of a run folder's best model on ``data`` (``shortlist eval``)."""
    dev = resolve_device(device)
    model = load_model(Path(run_dir) / "best").to(dev)
    if not isinstance(model, Ranker):
        raise ValueError(f"{run_dir}/best holds a {type(model).__name__}, not a ranker.")
    valid = evaluate_ctr(model, data, "valid", batch_size=batch_size, device=dev).metrics
    test = evaluate_ctr(model, data, "test", batch_size=batch_size, device=dev).metrics
    return valid, test
