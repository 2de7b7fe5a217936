"""One training loop for every model that implements ``compute_loss(batch) -> LossOutput``.

AdamW with linear warm-up (then constant or cosine decay), gradient clipping, bf16 autocast on GPU,
an optional moving average of the weights for validation and the saved model (``ema_decay``),
evaluation after every ``eval_every`` epochs with early stopping on a validation metric, an atomic
checkpoint after every epoch (resume continues bit-for-bit on CPU), a JSONL metrics log, rich
progress bars, and DDP when started by ``torchrun`` (same code path; rank 0 evaluates and writes).

The trainer knows nothing of protocols: it takes an ``evaluate(model) -> dict[str, float]``
callable for validation.

Example:
    >>> trainer = Trainer(model, split.train, TrainConfig(epochs=10), run_dir="runs/x",
    ...                   evaluate=lambda m: evaluate(m, split.valid, "tiger").metrics)
    >>> result = trainer.fit()
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, get_args, runtime_checkable

import numpy as np
import torch
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from torch import nn

from shortlist.data.batches import SequenceBatch
from shortlist.data.loader import make_loader
from shortlist.data.sequences import Jagged, multi_scale_windows
from shortlist.models.base import Model
from shortlist.ops.shapes import round_up_per_octave
from shortlist.train import checkpoint as ckpt
from shortlist.train.distributed import (
    DistInfo,
    all_reduce_sum,
    broadcast_object,
    cleanup,
    init_distributed,
)
from shortlist.train.ema import WeightAverage, check_decay
from shortlist.train.length_groups import group_weights, length_groups

log = logging.getLogger(__name__)

Evaluate = Callable[[Model], dict[str, float]]


@runtime_checkable
class BatchSource(Protocol):
    """What the trainer iterates when it is not given jagged sequences (a ranker's CTR loader):
    ``len`` (batches per epoch), ``iter`` (batches with ``.to(device, non_blocking=...)`` and a
    ``num_rows`` count) and ``set_epoch(epoch)`` (selects the epoch's shuffle; called each epoch)."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Any]: ...

    def set_epoch(self, epoch: int) -> None: ...


CompileMode = Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]
COMPILE_MODES: tuple[str, ...] = get_args(CompileMode)


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.98)
    warmup_steps: int = 0
    schedule: Literal["constant", "cosine"] = "constant"
    grad_clip: float = 1.0  # max gradient norm; 0 disables clipping
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto = bf16 autocast on CUDA, fp32 on CPU
    device: str = "auto"  # auto = cuda when available
    seed: int = 0
    num_workers: int = 2  # DataLoader processes building batches (0 = in the main process)
    eval_every: int = 1  # epochs between validations
    metric: str = "ndcg@10"  # early-stopping metric (higher is better)
    patience: int = 5  # validations without improvement before stopping; 0 = never stop early
    max_steps_per_epoch: int = 0  # 0 = the whole epoch
    log_every: int = 50  # steps between JSONL log lines
    threads: int = 0  # torch CPU threads; 0 = leave torch's default
    compile: bool = False  # torch.compile the loss (GPU), static shapes: compile_width's widths
    # torch.compile mode with compile=True: "max-autotune" autotunes the GEMMs (ELASTIC's many small
    # per-chunk matmuls: docs/long_sequences.md, speed); "reduce-overhead" adds CUDA graphs
    compile_mode: CompileMode = "default"
    # "last": each training row is a user's most recent max_len targets (older events are never
    # targets); "all": long sequences are cut into windows of max_len targets so every event is one
    windows: Literal["last", "all"] = "last"
    # > 0 with windows="all": also cut every sequence into windows of this many targets, so each
    # event is a target twice an epoch, once with the model's max_len of context and once with at
    # most this much (a 2,048 model also learns the short contexts most users have; 0 = off)
    short_windows: int = 0
    # > 1: each batch runs as up to this many groups of rows of similar length, each at its own
    # width, their losses weighted by their share of the targets (train/length_groups.py): the same
    # gradient as the padded batch for a full-softmax loss, in fewer padded positions (1 = off)
    length_groups: int = 1
    # True: torch.use_deterministic_algorithms for the run, so a GPU run repeats from its seed, or
    # stops with PyTorch's error naming the first operation that has no deterministic kernel (CPU
    # runs repeat without it)
    deterministic: bool = False
    time_limit_s: float = 0.0  # stop after the epoch in which training time passes this; 0 = none
    # > 0: validate and save the exponential moving average of the weights (train/ema.py), e.g. 0.999
    ema_decay: float = 0.0
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"The {name!r} parameter of TrainConfig must be an int >= 1. Got {getattr(self, name)!r} instead."
                )
        if self.lr <= 0:
            raise ValueError(
                f"The 'lr' parameter of TrainConfig must be > 0. Got {self.lr!r} instead."
            )
        if self.eval_every < 1:
            raise ValueError(
                f"The 'eval_every' parameter of TrainConfig must be >= 1. Got {self.eval_every!r} instead."
            )
        if self.short_windows < 0 or (self.short_windows and self.windows != "all"):
            raise ValueError(
                "The 'short_windows' parameter of TrainConfig needs windows='all' and must be >= 0 "
                f"(0 = off). Got short_windows={self.short_windows!r} with windows={self.windows!r}."
            )
        if isinstance(self.length_groups, bool) or self.length_groups < 1:
            raise ValueError(
                "The 'length_groups' parameter of TrainConfig must be an int >= 1 (1 = off). "
                f"Got {self.length_groups!r} instead."
            )
        if self.ema_decay != 0:
            check_decay(self.ema_decay, "TrainConfig", "ema_decay")
        if self.compile_mode not in COMPILE_MODES:
            raise ValueError(
                f"The 'compile_mode' parameter of TrainConfig must be one of {list(COMPILE_MODES)}. "
                f"Got {self.compile_mode!r} instead."
            )
        self.betas = tuple(self.betas)  # type: ignore[assignment]


@dataclass
class TrainResult:
    best_epoch: int
    best_metrics: dict[str, float]
    epochs_run: int
    stopped_early: bool
    history: list[dict[str, Any]] = field(default_factory=list)
    # what ended training: "patience", "time_limit" (train.time_limit_s) or "epochs" (train.epochs)
    stopped_by: str = "epochs"
    train_seconds: float = 0.0
    sequences_per_s: float = 0.0


class _LossModule(nn.Module):
    """Wraps ``model.compute_loss`` as ``forward`` so DDP can hook gradient synchronisation."""

    def __init__(self, model: Model) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: SequenceBatch) -> torch.Tensor:
        return self.model.compute_loss(batch).loss


# cuBLAS needs a fixed workspace for deterministic results (PyTorch's reproducibility notes)
CUBLAS_DETERMINISTIC_WORKSPACE = ":4096:8"
COMPILE_MIN_WIDTH = 64  # the narrowest width a compiled training step is given
COMPILE_WIDTHS_PER_OCTAVE = 4  # from 256 columns up, at most 25% over a batch's longest row
COMPILE_RECOMPILE_LIMIT = 64  # dynamo's per-function limit while train.compile is on (torch's: 8)


def compile_width(width: int, max_len: int) -> int:
    """The width a compiled training step pads a batch to, so that compiled shapes repeat.

    Dynamic padding alone gives nearly every batch its own width; a compiled step then recompiles
    for most of them (the long-history encoders guard on the number of chunks), minutes of
    compiling for seconds of training (``benchmarks/train_compile.py``, 2026-11-30). Rounding
    ``width`` up with :func:`~shortlist.ops.shapes.round_up_per_octave` (steps of at least
    ``COMPILE_MIN_WIDTH``, ``COMPILE_WIDTHS_PER_OCTAVE`` widths per octave), capped at
    ``max_len``, leaves 16 widths from 1 to 2,048 for at most 25% more columns from 256 up, and
    fewer than 64 below (0 stays 0).
    """
    return min(round_up_per_octave(width, COMPILE_MIN_WIDTH, COMPILE_WIDTHS_PER_OCTAVE), max_len)


def trim_padding(batch: SequenceBatch, *, bucketed: bool = False) -> SequenceBatch:
    """Drop the leading all-padding columns of a left-padded batch (dynamic padding).

    The loader pads every row to ``max_len``; most batches are far shorter (Amazon Beauty's median
    history is 6), so attention and the loss then run on (B, max length in the batch) only.
    ``bucketed``: keep :func:`compile_width` columns instead (``train.compile``), a few shapes in
    all rather than one per batch; the extra columns are padding, which every model masks.
    """
    width = int(batch.lengths.max()) if batch.lengths.numel() else 0
    L = batch.input_ids.shape[1]
    if bucketed:
        width = compile_width(width, L)
    if width >= L or width == 0:
        return batch
    cut = {
        "input_ids": batch.input_ids[:, L - width :],
        "target_ids": batch.target_ids[:, L - width :],
    }
    if batch.timestamps is not None:
        cut["timestamps"] = batch.timestamps[:, L - width :]
    if batch.negatives is not None and batch.negatives.dim() == 3:
        cut["negatives"] = batch.negatives[:, L - width :]
    return dataclasses.replace(batch, **cut)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def weight_decay_groups(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """AdamW's two parameter groups: (with weight decay, without). Without: 1-D parameters (biases,
    norms, per-head scales), embeddings, and ``*_logit`` parameters, which are bounded gates and
    rates through a sigmoid (ELASTIC's ``decay_logit``), not weights: weight decay would pull them
    to sigmoid(0), e.g. every recency half-life to 2 events."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, p in model.named_parameters():
        plain = p.ndim < 2 or "emb" in name or name.endswith("_logit")
        (no_decay if plain else decay).append(p)
    return decay, no_decay


class Trainer:
    """Train ``model`` on ``train`` sequences; see the module docstring.

    Args:
        model: a registered model (its ``config.max_len`` sets the batch length).
        train: jagged training sequences (items 1..N), or a :class:`BatchSource` that yields
            ready batches (a ranker's ``CTRLoader``; ``windows``, ``num_workers`` do not apply).
        config: the training settings.
        run_dir: where ``checkpoints/last.pt``, ``best/`` (the best model, ``save_pretrained``) and
            ``metrics.jsonl`` go.
        evaluate: validation callable; None trains for ``epochs`` without early stopping.
        timestamps: optional jagged timestamps aligned with ``train`` (models with time features).
    """

    def __init__(
        self,
        model: Model,
        train: Jagged | BatchSource,
        config: TrainConfig,
        run_dir: str | Path,
        *,
        evaluate: Evaluate | None = None,
        timestamps: Jagged | None = None,
        user_ids: np.ndarray | None = None,
    ) -> None:
        self.model = model
        self.train = train
        self.config = config
        self.run_dir = Path(run_dir)
        self.evaluate = evaluate
        self.timestamps = timestamps
        self.user_ids = user_ids
        if config.windows == "all" and isinstance(train, Jagged):
            max_len = model.config.max_len
            if config.short_windows >= max_len:
                raise ValueError(
                    f"train.short_windows ({config.short_windows}) must be below the model's "
                    f"max_len ({max_len}): windows that long are the ones windows='all' cuts already."
                )
            sizes = [max_len] + ([config.short_windows] if config.short_windows else [])
            self.train, (self.timestamps,), rows = multi_scale_windows(train, sizes, timestamps)
            self.user_ids = None if user_ids is None else np.asarray(user_ids)[rows]
        self.device = resolve_device(config.device)
        self.dist: DistInfo = init_distributed(self.device.type)
        if self.device.type == "cuda" and self.dist.enabled:
            self.device = torch.device("cuda", self.dist.local_rank)
        self.amp = config.precision == "bf16" or (
            config.precision == "auto" and self.device.type == "cuda"
        )
        if config.threads > 0:
            torch.set_num_threads(config.threads)

    # -- pieces -------------------------------------------------------------------------------
    def _loader(self) -> Any:
        c = self.config
        if not isinstance(self.train, Jagged):  # a ready batch source (a ranker's CTRLoader)
            return self.train
        return make_loader(
            self.train,
            batch_size=c.batch_size,
            max_len=self.model.config.max_len,
            num_negatives=0,
            shuffle=True,
            seed=c.seed,
            num_workers=c.num_workers,
            user_ids=self.user_ids,
            timestamps=self.timestamps,
            num_items=self.model.config.num_items,
            rank=self.dist.rank if self.dist.enabled else None,
            world_size=self.dist.world_size if self.dist.enabled else None,
            pin_memory=self.device.type == "cuda",
        )

    def _schedule(self, total_steps: int) -> Callable[[int], float]:
        c = self.config

        def factor(step: int) -> float:
            if c.warmup_steps and step < c.warmup_steps:
                return (step + 1) / c.warmup_steps
            if c.schedule == "cosine":
                progress = (step - c.warmup_steps) / max(1, total_steps - c.warmup_steps)
                return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
            return 1.0

        return factor

    def _log(self, record: dict[str, Any]) -> None:
        if not self.dist.is_main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with (self.run_dir / "metrics.jsonl").open("a") as fh:
            fh.write(json.dumps(record) + "\n")

    def _averaged(self, ema: WeightAverage | None) -> Any:
        """The weights to validate and save: the moving average when there is one."""
        return ema.applied(self.model) if ema is not None else nullcontext()

    def _validate(
        self, state: dict[str, Any], epoch: int, ema: WeightAverage | None
    ) -> dict[str, float]:
        """Validate the weights the run keeps (the average when there is one; one swap for the
        evaluation and the save), update the early-stopping ``state`` and save ``best/`` when the
        metric improves. Rank 0 evaluates and writes; the metrics are broadcast to every rank."""
        assert self.evaluate is not None
        c = self.config
        with self._averaged(ema):
            metrics: dict[str, float] = {}
            if self.dist.is_main:
                metrics = self.evaluate(self.model)
            metrics = broadcast_object(metrics, self.dist)
            score = metrics.get(c.metric)
            if score is None:
                raise ValueError(
                    f"Early-stopping metric {c.metric!r} not among the validation metrics {sorted(metrics)}."
                )
            if score > state["best"]:
                state.update(best=score, best_epoch=epoch, best_metrics=metrics, bad_evals=0)
                if self.dist.is_main:
                    self.model.save_pretrained(self.run_dir / "best")
            else:
                state["bad_evals"] += 1
        return metrics

    # -- the loop ----------------------------------------------------------------------------
    def _accumulate(
        self, batch: Any, step_fn: Callable[[Any], torch.Tensor], net: nn.Module, autocast: Any
    ) -> torch.Tensor:
        """Forward and backward of one batch; returns its (detached) loss. A padded batch is
        trimmed, and with ``length_groups`` > 1 cut into groups of similar length whose losses,
        weighted by their share of the targets, sum to the batch's (gradients accumulate; under
        DDP only the last group synchronises them)."""
        c = self.config
        groups = [batch]  # a BatchSource's batch (no "num_rows" on a padded one) is used as is
        if not hasattr(batch, "num_rows"):
            groups = [
                trim_padding(g, bucketed=c.compile) for g in length_groups(batch, c.length_groups)
            ]
        if len(groups) == 1:
            with autocast():
                loss = step_fn(groups[0].to(self.device, non_blocking=True))
            loss.backward()
            return loss.detach()
        total = torch.zeros((), device=self.device)
        for i, (group, weight) in enumerate(zip(groups, group_weights(groups), strict=True)):
            last = i == len(groups) - 1
            with nullcontext() if last or not self.dist.enabled else net.no_sync():  # type: ignore[operator]
                with autocast():
                    loss = step_fn(group.to(self.device, non_blocking=True))
                (loss * weight).backward()
            total = total + loss.detach().float() * weight
        return total

    def fit(self, *, resume: bool = True) -> TrainResult:
        """Train until ``epochs`` or early stopping; resumes from ``checkpoints/last.pt`` if present.

        With ``deterministic``, PyTorch's deterministic algorithms are on for the run (and cuBLAS
        gets the fixed workspace it needs for them, unless one is set already); both are set back
        as they were afterwards."""
        if not self.config.deterministic:
            return self._fit(resume)
        workspace_set = "CUBLAS_WORKSPACE_CONFIG" in os.environ
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_DETERMINISTIC_WORKSPACE)
        previous = torch.are_deterministic_algorithms_enabled()
        torch.use_deterministic_algorithms(True)
        try:
            return self._fit(resume)
        finally:
            torch.use_deterministic_algorithms(previous)
            if not workspace_set:
                os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)

    def _fit(self, resume: bool) -> TrainResult:
        c = self.config
        seed_everything(c.seed)
        self.model.to(self.device)
        loader = self._loader()
        steps_per_epoch = (
            len(loader) if not c.max_steps_per_epoch else min(len(loader), c.max_steps_per_epoch)
        )
        if steps_per_epoch == 0:
            raise ValueError("No training batch: every training sequence is shorter than 2 events.")
        decay, no_decay = weight_decay_groups(self.model)
        optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": c.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=c.lr,
            betas=c.betas,
            fused=self.device.type == "cuda",
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, self._schedule(c.epochs * steps_per_epoch)
        )
        state = {
            "epoch": 0,
            "step": 0,
            "best": -math.inf,
            "best_epoch": 0,
            "best_metrics": {},
            "bad_evals": 0,
            "history": [],
            "train_seconds": 0.0,
            "sequences": 0,
            "stopped_early": False,
            "stopped_by": "",
        }
        ema = WeightAverage(self.model, c.ema_decay) if c.ema_decay else None
        last = self.run_dir / "checkpoints" / ckpt.LAST
        if resume and last.exists():
            saved = ckpt.load_checkpoint(last, map_location=self.device)
            self.model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            if ema is not None:
                if saved.get("ema") is None:
                    raise ValueError(
                        f"{last} was written without train.ema_decay; resume it with the same "
                        "config, or start a new run folder."
                    )
                ema.load_state_dict(saved["ema"])
            state = saved["state"]
            ckpt.set_rng_state(saved["rng"])
            log.info("resumed from %s at epoch %d", last, state["epoch"])
        elif self.dist.is_main:  # a fresh run: start a fresh log
            (self.run_dir / "metrics.jsonl").unlink(missing_ok=True)
        net: nn.Module = _LossModule(self.model)
        if self.dist.enabled:
            net = nn.parallel.DistributedDataParallel(
                net, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        step_fn = net
        if c.compile:  # static shapes: the batches come in compile_width's few widths
            dynamo = torch._dynamo.config
            dynamo.cache_size_limit = max(dynamo.cache_size_limit, COMPILE_RECOMPILE_LIMIT)
            step_fn = torch.compile(net, mode=c.compile_mode, dynamic=False)
        autocast = (
            (lambda: torch.autocast(self.device.type, dtype=torch.bfloat16))
            if self.amp
            else nullcontext
        )

        stopped_early = bool(
            state.get("stopped_early", False)
        )  # a resumed run that had already stopped
        progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            disable=not (c.progress and self.dist.is_main),
            transient=True,
        )
        with progress:
            while state["epoch"] < c.epochs and not stopped_early:
                epoch = state["epoch"]
                self.model.train()
                loader.set_epoch(epoch)
                task = progress.add_task(
                    "train", total=steps_per_epoch, epoch=epoch + 1, loss=float("nan")
                )
                t0 = time.perf_counter()
                seqs, positions = 0, 0
                for i, batch in enumerate(loader):
                    if i >= steps_per_epoch:
                        break
                    if hasattr(batch, "num_rows"):  # a BatchSource's batch: rows, no padding
                        rows = batch.num_rows
                        positions += rows
                    else:
                        rows = batch.input_ids.shape[0]
                        positions += int(batch.lengths.sum())  # on the CPU copy: no device sync
                    optimizer.zero_grad(set_to_none=True)
                    loss = self._accumulate(batch, step_fn, net, autocast)
                    if c.grad_clip > 0:
                        torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip)
                    optimizer.step()
                    scheduler.step()
                    if ema is not None:
                        ema.update(self.model)
                    state["step"] += 1
                    seqs += rows
                    if state["step"] % c.log_every == 0 or i == steps_per_epoch - 1:
                        value = float(loss.detach())
                        progress.update(task, loss=value)
                        self._log(
                            {
                                "type": "train",
                                "epoch": epoch + 1,
                                "step": state["step"],
                                "loss": value,
                                "lr": scheduler.get_last_lr()[0],
                            }
                        )
                    progress.advance(task)
                if self.device.type == "cuda":
                    torch.cuda.synchronize()
                seconds = time.perf_counter() - t0
                progress.remove_task(task)
                seqs = int(all_reduce_sum(seqs, self.dist, self.device))
                positions = int(all_reduce_sum(positions, self.dist, self.device))
                state["train_seconds"] += seconds
                state["sequences"] += seqs
                state["epoch"] = epoch + 1
                record: dict[str, Any] = {
                    "type": "epoch",
                    "epoch": epoch + 1,
                    "step": state["step"],
                    "train_s": seconds,
                    "sequences_per_s": seqs / seconds,
                    "positions_per_s": positions / seconds,
                    "loss": float(loss.detach()),
                }
                if self.evaluate is not None and (epoch + 1) % c.eval_every == 0:
                    record["valid"] = self._validate(state, epoch + 1, ema)
                    stopped_early = bool(c.patience) and state["bad_evals"] >= c.patience
                    state["stopped_early"] = stopped_early
                    if stopped_early:
                        state["stopped_by"] = "patience"
                if c.time_limit_s and state["train_seconds"] >= c.time_limit_s:
                    log.info(
                        "time limit of %.0f s reached after epoch %d", c.time_limit_s, epoch + 1
                    )
                    if not stopped_early:  # patience in the same epoch is the natural end
                        state["stopped_by"] = "time_limit"
                    stopped_early = state["stopped_early"] = True
                    record["time_limit"] = True
                state["history"].append(record)
                self._log(record)
                log.info(
                    "epoch %d: %.1fs, %.0f seq/s, loss %.4f%s",
                    epoch + 1,
                    seconds,
                    seqs / seconds,
                    record["loss"],
                    f", valid {c.metric} {record['valid'][c.metric]:.4f}"
                    if "valid" in record
                    else "",
                )
                if self.dist.is_main:
                    ckpt.save_checkpoint(
                        last,
                        {
                            "model": self.model.state_dict(),
                            "optimizer": optimizer.state_dict(),
                            "scheduler": scheduler.state_dict(),
                            "state": state,
                            "rng": ckpt.rng_state(),
                            "config": asdict(c),
                            "ema": None if ema is None else ema.state_dict(),
                        },
                    )
        if self.evaluate is None and self.dist.is_main:
            with self._averaged(ema):
                self.model.save_pretrained(self.run_dir / "best")
            state["best_epoch"] = state["epoch"]
        if self.dist.enabled:
            torch.distributed.barrier()  # rank 0 has written best/ and the checkpoint
        cleanup(self.dist)
        return TrainResult(
            best_epoch=state["best_epoch"],
            best_metrics=state["best_metrics"],
            epochs_run=state["epoch"],
            stopped_early=stopped_early,
            history=state["history"],
            # a checkpoint written before "stopped_by" existed tells only that training stopped
            stopped_by=state.get("stopped_by") or ("unknown" if stopped_early else "epochs"),
            train_seconds=state["train_seconds"],
            sequences_per_s=state["sequences"] / max(state["train_seconds"], 1e-9),
        )
