"""An experiment end to end: dataset -> protocol split -> model -> training with early stopping ->
test metrics of the best epoch, all written to a run folder.

Run folder layout::

    runs/<name>/config.yaml        the resolved config (after --set overrides)
    runs/<name>/metrics.jsonl      training log (one JSON object per line)
    runs/<name>/checkpoints/last.pt
    runs/<name>/best/              the best model (save_pretrained)
    runs/<name>/results.json       validation and test metrics of the best model, timings
    runs/<name>/ranks.npz          each validation and test example's rank (shortlist.eval.ranks)
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from shortlist.atomic import write_json
from shortlist.data.sequences import EvalExamples, SequenceSplit
from shortlist.data.validation import widen_validation
from shortlist.eval.protocols import EvalResult, evaluate, get_protocol
from shortlist.eval.ranks import save_ranks
from shortlist.models.base import Model, build_model_from_section, load_model
from shortlist.train.config import ExperimentConfig
from shortlist.train.trainer import Trainer, TrainResult, resolve_device, seed_everything

log = logging.getLogger(__name__)

RESULTS = "results.json"


@dataclass
class RunResult:
    run_dir: Path
    valid: dict[str, float]
    test: dict[str, float]
    train: TrainResult


def make_split(config: ExperimentConfig) -> tuple[SequenceSplit, Any]:
    """Load the config's dataset and split it by its protocol; returns (split, dataset)."""
    # imported here: training on a saved split (run_on_split) needs neither Polars nor the loaders
    from shortlist.data.datasets import load_dataset
    from shortlist.data.splits import SPLITS

    data = load_dataset(
        config.dataset.name, data_dir=config.dataset.data_dir, **config.dataset.params
    )
    split = SPLITS.get(config.protocol)(data)  # hstu, tiger or long (each a leave-one-out)
    return split, data


def run_experiment(config: ExperimentConfig, *, resume: bool = True) -> RunResult:
    """Load and split the config's dataset, then :func:`run_on_split`."""
    if config.protocol == "ctr":  # a ranker on a CTR dataset
        return run_ctr_experiment(config, resume=resume)
    split, _ = make_split(config)
    return run_on_split(config, split, resume=resume)


def load_ctr_data(config: ExperimentConfig) -> Any:
    """The config's CTR dataset (``dataset.params.prepared``: a ``.npz`` from ``benchmarks/ctr.py prepare``)."""
    from shortlist.data.ctr import load_ctr_dataset

    return load_ctr_dataset(
        config.dataset.name, data_dir=config.dataset.data_dir, **config.dataset.params
    )


def run_ctr_experiment(config: ExperimentConfig, *, resume: bool = True) -> RunResult:
    """Train and evaluate a ranker config (``protocol: ctr``): :func:`shortlist.train.ctr_experiment.run_ctr`."""
    from shortlist.train.ctr_experiment import run_ctr

    run_dir = config.run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config.model_dump(), sort_keys=False))
    result = run_ctr(
        config.name,
        config.dataset.name,
        dict(config.model),
        config.train_config(),
        load_ctr_data(config),
        run_dir=run_dir,
        eval_batch_size=config.eval.ranker_batch(),
        resume=resume,
    )
    return RunResult(run_dir=run_dir, valid=result.valid, test=result.test, train=result.train)


def check_history_cap(split: SequenceSplit) -> None:
    """ValueError when ``split``'s protocol would cut the evaluation histories the split keeps:
    ``evaluate`` applies the protocol's cap (tiger: 20 events) whatever the split was made with, so
    a split saved as ``tiger`` with whole histories is ranked from its last 20 events (what the
    planted long-range split was, until 2026-11-30). A split cut tighter than its protocol is fine."""
    cap = get_protocol(split.protocol).max_history
    if cap is not None and (split.max_history is None or split.max_history > cap):
        kept = "whole" if split.max_history is None else f"up to {split.max_history} events of"
        raise ValueError(
            f"The split keeps {kept} evaluation histories, but its protocol {split.protocol!r} ranks "
            f"from each history's {cap} most recent events. Save it under a protocol without that "
            "cap ('long': the same metrics over whole histories, docs/protocols.md), or cut it to "
            f"{cap} (max_history={cap})."
        )


def run_on_split(
    config: ExperimentConfig, split: SequenceSplit, *, resume: bool = True
) -> RunResult:
    """Train and evaluate ``config`` on a prepared split; returns the best epoch's metrics."""
    if split.protocol != config.protocol:
        raise ValueError(
            f"The split was made by protocol {split.protocol!r} but the config asks for {config.protocol!r}."
        )
    check_history_cap(split)
    split = widen_validation(split, config.eval.valid_targets)
    run_dir = config.run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config.model_dump(), sort_keys=False))
    train_cfg = config.train_config()
    seed_everything(train_cfg.seed)  # the initial weights too, not only the batches
    model = build_model_from_section(config.model, num_items=split.num_items)
    device = resolve_device(train_cfg.device)
    log.info(
        "%s: %s, %s parameters, %s",
        config.name,
        split.summary(),
        f"{model.num_parameters():,}",
        device,
    )

    def validate(m: Model) -> dict[str, float]:
        return evaluate(
            m,
            split.valid,
            config.protocol,
            batch_size=config.eval.retriever_batch(),
            device=device,
            exclude_history=config.eval.exclude_history,
        ).metrics

    trainer = Trainer(
        model,
        split.train,
        train_cfg,
        run_dir,
        evaluate=validate,
        timestamps=split.train_timestamps,
        user_ids=split.train_users,
    )
    start = time.perf_counter()
    result = trainer.fit(resume=resume)
    if not trainer.dist.is_main:  # under torchrun, rank 0 evaluates and writes the results
        return RunResult(run_dir=run_dir, valid={}, test={}, train=result)
    best = load_model(run_dir / "best").to(device)
    evaluated = evaluate_best(best, split, config, device, run_dir)
    payload = {
        "name": config.name,
        "dataset": config.dataset.name,
        "protocol": config.protocol,
        "model": config.model["name"],
        "parameters": model.num_parameters(),
        "split": split.summary(),
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        "stopped_by": result.stopped_by,
        "train_seconds": result.train_seconds,
        "wall_seconds": time.perf_counter() - start,
        "sequences_per_s": result.sequences_per_s,
        "device": str(device),
        **evaluated,
        "train_config": asdict(train_cfg),
    }
    write_json(run_dir / RESULTS, payload)
    return RunResult(
        run_dir=run_dir, valid=evaluated["valid"], test=evaluated["test"], train=result
    )


def evaluate_best(
    model: Model,
    split: SequenceSplit,
    config: ExperimentConfig,
    device: torch.device,
    run_dir: Path,
) -> dict[str, Any]:
    """Evaluate a run's best model on its validation and test examples; write ``ranks.npz``.

    Used after training (:func:`run_on_split`) and by ``shortlist eval RUN_DIR``. Returns the
    fields of ``results.json`` it owns: ``valid``, ``test``, ``test_by_history_length``,
    ``test_exclude_history`` and the test metrics under the other masking rule
    (``test_unmasked`` or ``test_masked``), so that a baseline that evaluates the other way
    (RecBole never masks seen items) can be compared like for like.
    """

    def run(examples: EvalExamples, exclude: bool | None) -> EvalResult:
        return evaluate(
            model,
            examples,
            config.protocol,
            batch_size=config.eval.retriever_batch(),
            device=device,
            exclude_history=exclude,
        )

    valid = run(split.valid, config.eval.exclude_history)
    test = run(split.test, config.eval.exclude_history)
    other = run(split.test, not test.exclude_history)
    save_ranks(run_dir, {"valid": (split.valid, valid), "test": (split.test, test)})
    return {
        "valid": valid.metrics,
        "test": test.metrics,
        "test_by_history_length": test.by_length_bucket(),
        "test_exclude_history": test.exclude_history,
        "test_masked" if other.exclude_history else "test_unmasked": other.metrics,
    }
