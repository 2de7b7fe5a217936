"""Evaluation protocols of the anchors, and :func:`evaluate`: full-catalogue ranking of held-out targets.

Notation:
    E   evaluation examples (one held-out target each)
    B   examples per batch (``batch_size``)
    N   items (1..N; column 0 of the scores is padding)
    L   history positions fed to the model (``max_len``)
    H   the protocol's history cap

A protocol fixes what makes a number comparable with an anchor (../shared/reference/ANCHORS.md):
the metric keys, the history cap, whether seen items are masked, the candidate set and the tie
rule. The split itself (leave-one-out by time) comes from :mod:`shortlist.data.splits`.

| name | metrics | history | seen items | candidates | anchor |
|---|---|---|---|---|---|
| ``hstu`` | HR, NDCG @ 10, 50, 200; MRR | the model's window (``max_len``; 200 on ML-1M) | masked | all N | generative-recommenders (ANCHORS.md section 1) |
| ``tiger`` | Recall, NDCG @ 5, 10; MRR | 20 most recent items | not masked | all N | TIGER (section 2) |
| ``long`` | Recall, NDCG @ 5, 10; MRR | the model's window (``max_len``) | not masked | all N | none: long-history splits |

``long`` is ``tiger`` without its cap, for splits whose point is a history longer than 20 events (the
planted long-range split of ``benchmarks/longseq_synthetic.py``): under ``tiger`` every model would
be ranked from its last 20 events, whatever it was trained to read.

What the anchors' code does, and where:

- generative-recommenders, ``research/trainer/train.py``: every epoch it evaluates the whole eval
  set (``eval_dataset`` of ``research/data/reco_dataset.py``: ``ignore_last_n=0``, i.e. the last
  event of each user is the target and the preceding ones, truncated to the most recent
  ``max_sequence_length``, are the history) with ``eval_metrics_v2_from_tensors``
  (``research/data/eval.py``). That function's ``filter_invalid_ids`` defaults to True and
  train.py does not override it, so ``get_top_k_outputs`` (``research/indexing/candidate_index.py``)
  drops every id of ``past_ids`` (the same truncated history the model reads) from the top-k:
  seen items are masked, although ``get_eval_state`` first puts all item ids (``# Exhaustively eval
  all items (incl. seen ids)``) in the candidate index. Ranks come from ``torch.topk``
  (``MIPSBruteForceTopK``), so ties fall in topk's order; see :mod:`shortlist.eval.metrics`.
  ``hstu`` therefore masks the items of the history window the model sees. The candidate set of
  ML-1M/ML-20M there is every movie id of ``movies.dat`` (3,883 for ML-1M, including movies nobody
  rated); it equals ours when the dataset keeps unseen items (``keep_unseen_items``). MRR there
  gives misses beyond the top 2,500 the value 1/2501; ours is the exact ``1 / (rank + 1)``.
- TIGER: no public code. ANCHORS.md's side-by-side SASRec numbers were measured with RecBole,
  whose full-sort evaluation does not mask history for sequential models
  (``FullSortEvalDataLoader.collate_fn`` returns ``history_index=None`` when the model is
  sequential), so ``tiger`` does not mask. (S3-Rec-style code, the source of many published Beauty
  baselines, does mask training items by setting their scores to 0; pass ``exclude_history=True``
  to approximate it.)

Example:
    >>> result = evaluate(model, split.test, "tiger", batch_size=1024)
    >>> result.metrics["ndcg@10"], result.by_length_bucket([0, 5, 10, 20])
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import torch

from shortlist.data.batches import iter_eval_batches
from shortlist.data.sequences import EvalExamples, Jagged, segment_indices
from shortlist.eval.metrics import TIES, Ties, compute_metrics, parse_metric, rank_of_target
from shortlist.models.base import Retriever
from shortlist.registry import Registry

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_LENGTH_EDGES",
    "EVAL_BATCH",
    "LEGACY_OPEN_END",
    "PROTOCOLS",
    "EvalProtocol",
    "EvalResult",
    "cap_history",
    "evaluate",
    "get_protocol",
    "history_lengths",
]

DEFAULT_LENGTH_EDGES: tuple[int, ...] = (0, 5, 10, 20, 50, 100, 200, 500)
# examples per batch by default: batches sorted by history length stay narrow (evaluate's by_length)
EVAL_BATCH = 256
# results.json written before 2026-11-30 closed the last (open) bucket at this max_length, not None
LEGACY_OPEN_END = 10**9 - 1


@dataclass(frozen=True)
class EvalProtocol:
    """How a retriever is evaluated so that its numbers compare with an anchor.

    Attributes:
        name: registry name.
        metric_names: metrics with a cut-off (``"hr"``, ``"recall"``, ``"ndcg"``).
        cutoffs: the cut-offs k, applied to each of ``metric_names``.
        extra_metrics: metrics without a cut-off (``"mrr"``).
        max_history: H, the most recent items of each history kept (None = all; the model's
            ``max_len`` window applies on top).
        exclude_history: mask the history items the model sees (score ``-inf``) before ranking.
        candidates: the candidate set; only ``"all"`` (the full catalogue 1..N).
        ties: tie rule of :func:`~shortlist.eval.metrics.rank_of_target`.
        anchor: where the protocol comes from.
    """

    name: str
    metric_names: tuple[str, ...]
    cutoffs: tuple[int, ...]
    extra_metrics: tuple[str, ...] = ("mrr",)
    max_history: int | None = None
    exclude_history: bool = False
    candidates: Literal["all"] = "all"
    ties: Ties = "optimistic"
    anchor: str = ""

    def __post_init__(self) -> None:
        if self.candidates != "all":
            raise ValueError(
                f"The 'candidates' parameter of EvalProtocol must be 'all'. Got {self.candidates!r} instead."
            )
        if self.ties not in TIES:
            raise ValueError(
                f"The 'ties' parameter of EvalProtocol must be one of {TIES}. Got {self.ties!r} instead."
            )
        if self.max_history is not None and (
            not isinstance(self.max_history, int) or self.max_history < 1
        ):
            raise ValueError(
                f"The 'max_history' parameter of EvalProtocol must be an int >= 1 or None. Got {self.max_history!r} instead."
            )
        if not self.cutoffs or any(not isinstance(k, int) or k < 1 for k in self.cutoffs):
            raise ValueError(
                f"The 'cutoffs' parameter of EvalProtocol must be ints >= 1. Got {self.cutoffs!r} instead."
            )
        for key in self.metric_keys:
            parse_metric(key)  # unknown metric names raise here, at definition time

    @property
    def metric_keys(self) -> tuple[str, ...]:
        """Result keys in report order: ``("hr@10", "ndcg@10", "hr@50", ..., "mrr")``."""
        keys = [f"{m}@{k}" for k in self.cutoffs for m in self.metric_names]
        return (*keys, *self.extra_metrics)


PROTOCOLS: Registry[EvalProtocol] = Registry("evaluation protocol")
PROTOCOLS.add(
    "hstu",
    EvalProtocol(
        name="hstu",
        metric_names=("hr", "ndcg"),
        cutoffs=(10, 50, 200),
        max_history=None,
        exclude_history=True,
        anchor="meta-recsys/generative-recommenders research/data/eval.py (filter_invalid_ids=True)",
    ),
)
PROTOCOLS.add(
    "tiger",
    EvalProtocol(
        name="tiger",
        metric_names=("recall", "ndcg"),
        cutoffs=(5, 10),
        max_history=20,
        exclude_history=False,
        anchor="Rajput et al. 2023 (TIGER); RecBole full-sort for sequential models",
    ),
)
PROTOCOLS.add(  # tiger without its cap (module docstring)
    "long",
    replace(
        PROTOCOLS.get("tiger"),
        name="long",
        max_history=None,
        anchor="none (shortlist): TIGER's metrics over the model's whole window, for long histories",
    ),
)


def get_protocol(protocol: str | EvalProtocol) -> EvalProtocol:
    """A registered protocol by name, or ``protocol`` itself; unknown names list the valid ones."""
    if isinstance(protocol, EvalProtocol):
        return protocol
    if not isinstance(protocol, str):
        raise TypeError(
            f"protocol must be a name or an EvalProtocol. Got {type(protocol).__name__} instead."
        )
    return PROTOCOLS.get(protocol)


# -- results -----------------------------------------------------------------------------------
@dataclass
class EvalResult:
    """The outcome of :func:`evaluate`.

    Attributes:
        metrics: metric key -> mean over all examples (``"hr@10"``, ``"ndcg@10"``, ``"mrr"``, ...).
        per_example_rank: (E,) int64 0-based rank of each target among the N candidates.
        history_lengths: (E,) int64 history length of each example after the protocol's cap
            (before the model's ``max_len`` window).
        num_examples: E.
        protocol: name of the protocol.
        ties: tie rule used for the ranks.
        exclude_history: whether seen items were masked.
        max_len: history window fed to the model.
        seconds: wall time of the evaluation.
    """

    metrics: dict[str, float]
    per_example_rank: np.ndarray
    history_lengths: np.ndarray
    num_examples: int
    protocol: str = ""
    ties: str = "optimistic"
    exclude_history: bool = False
    max_len: int = 0
    seconds: float = 0.0
    metric_keys: tuple[str, ...] = field(default=(), repr=False)

    def by_length_bucket(self, edges: Sequence[int] = DEFAULT_LENGTH_EDGES) -> list[dict[str, Any]]:
        """Metrics per history-length bucket, for reports.

        Args:
            edges: increasing lengths e_0 < e_1 < ... < e_m; bucket i holds examples with
                ``e_i <= length < e_{i+1}``, the last one ``length >= e_m``. Examples shorter than
                e_0 belong to no bucket.

        Returns:
            One dict per bucket: ``min_length``, ``max_length`` (inclusive; None for the open last
            bucket), ``num_examples``, ``share`` of all examples, and every metric (NaN when the
            bucket is empty).
        """
        e = np.asarray(list(edges))
        if e.ndim != 1 or e.size == 0 or e.dtype.kind not in "iu" or np.any(np.diff(e) <= 0):
            raise ValueError(
                f"The 'edges' parameter of by_length_bucket must be increasing ints. Got {list(edges)} instead."
            )
        keys = self.metric_keys or tuple(self.metrics)
        bucket = np.searchsorted(e, self.history_lengths, side="right") - 1  # (E,) -1 = below e_0
        rows = []
        for i, lo in enumerate(e.tolist()):
            ranks = self.per_example_rank[bucket == i]
            hi = int(e[i + 1]) - 1 if i + 1 < e.size else None
            share = len(ranks) / self.num_examples if self.num_examples else math.nan
            rows.append(
                {
                    "min_length": lo,
                    "max_length": hi,
                    "num_examples": len(ranks),
                    "share": share,
                    **compute_metrics(ranks, keys),
                }
            )
        return rows

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (no per-example arrays)."""
        return {
            "protocol": self.protocol,
            "num_examples": self.num_examples,
            "ties": self.ties,
            "exclude_history": self.exclude_history,
            "max_len": self.max_len,
            "eval_s": self.seconds,
            "metrics": dict(self.metrics),
        }


# -- evaluation --------------------------------------------------------------------------------
def cap_history(history: Jagged, max_history: int | None) -> Jagged:
    """The most recent ``max_history`` items of each row (all of them for None), vectorized."""
    if max_history is None:
        return history
    offsets = history.offsets.astype(np.int64, copy=False)
    kept = np.minimum(np.diff(offsets), max_history)  # (E,)
    if np.array_equal(kept, np.diff(offsets)):
        return history
    starts = offsets[1:] - kept
    new_offsets = np.zeros(len(kept) + 1, dtype=np.int64)
    np.cumsum(kept, out=new_offsets[1:])
    return Jagged(history.values[segment_indices(starts, offsets[1:])], new_offsets)


def history_lengths(examples: EvalExamples, protocol: str | EvalProtocol) -> np.ndarray:
    """(E,) int64 history length of each example after the protocol's cap (the lengths of
    :func:`cap_history`'s rows), as :func:`evaluate` records them in ``EvalResult.history_lengths``."""
    lengths = np.diff(examples.history.offsets).astype(np.int64)
    cap = get_protocol(protocol).max_history
    return lengths if cap is None else np.minimum(lengths, cap)


def _num_items(model: Retriever) -> int | None:
    n = getattr(getattr(model, "config", None), "num_items", None)
    return int(n) if isinstance(n, int | np.integer) else None


def evaluate(
    model: Retriever,
    examples: EvalExamples,
    protocol: str | EvalProtocol,
    *,
    batch_size: int = EVAL_BATCH,
    device: str | torch.device = "cpu",
    max_len: int | None = None,
    exclude_history: bool | None = None,
    ties: Ties | None = None,
    by_length: bool = True,
) -> EvalResult:
    """Rank every example's target among all N items and compute the protocol's metrics.

    Args:
        model: a retriever (``score_all(batch) -> (B, N+1)``); it runs in eval mode under
            ``torch.no_grad()`` and gets its previous training mode back afterwards.
        examples: held-out targets with their histories (``split.valid`` or ``split.test``).
        protocol: a registered name (``"hstu"``, ``"tiger"``) or an :class:`EvalProtocol`.
        batch_size: B; memory is bounded by B x (N+1) scores (plus one boolean copy).
        device: where the model runs (it must already be there); batches are moved to it.
        max_len: L, history positions fed to the model; ``model.config.max_len`` by default.
        exclude_history: override the protocol's masking of seen items (the items of the
            history window the model reads get score -inf; a target found there is a miss at every
            cut-off, as in generative-recommenders, where the filtered target falls out of the top-k).
        ties: override the protocol's tie rule.
        by_length: batch the examples by history length, each batch padded to its longest
            history (``iter_eval_batches``): the same scores for a model whose output does not
            depend on extra padding, at a fraction of the positions when histories are much
            shorter than ``max_len``; False pads every batch to ``max_len`` in input order.

    Returns:
        An :class:`EvalResult`; metrics are identical for any ``batch_size``.
    """
    proto = get_protocol(protocol)
    if not isinstance(model, Retriever):
        raise TypeError(
            f"evaluate expects a Retriever (score_all over the catalogue). Got {type(model).__name__} instead."
        )
    if not isinstance(examples, EvalExamples):
        raise TypeError(
            f"evaluate expects EvalExamples (split.valid or split.test). Got {type(examples).__name__} instead."
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(
            f"The 'batch_size' parameter of evaluate must be an int >= 1. Got {batch_size!r} instead."
        )
    if max_len is None:
        max_len = getattr(getattr(model, "config", None), "max_len", None)
        if max_len is None:
            raise ValueError(
                f"{type(model).__name__}'s config has no max_len: pass max_len to evaluate."
            )
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1:
        raise ValueError(
            f"The 'max_len' parameter of evaluate must be an int >= 1. Got {max_len!r} instead."
        )
    exclude = proto.exclude_history if exclude_history is None else bool(exclude_history)
    tie_rule = proto.ties if ties is None else ties
    if tie_rule not in TIES:
        raise ValueError(
            f"The 'ties' parameter of evaluate must be one of {TIES}. Got {tie_rule!r} instead."
        )

    targets = np.asarray(examples.targets)
    n_items = _num_items(model)
    if n_items is not None and len(targets) and (targets.min() < 1 or targets.max() > n_items):
        bad = int(targets[(targets < 1) | (targets > n_items)][0])
        raise ValueError(
            f"The examples' targets must be items of the model's catalogue 1..{n_items}. Got target {bad} "
            f"instead (were the examples built from another dataset than the model's?)."
        )
    history = cap_history(examples.history, proto.max_history)
    timestamps = (
        None
        if examples.history_timestamps is None
        else cap_history(examples.history_timestamps, proto.max_history)
    )
    lengths = history_lengths(examples, proto)

    start_time = time.perf_counter()
    ranks: list[torch.Tensor] = []
    order: list[np.ndarray] = []  # each batch's rows in the input order
    batches = iter_eval_batches(
        examples.users,
        history,
        targets,
        batch_size=batch_size,
        max_len=max_len,
        timestamps=timestamps,
        by_length=by_length,
    )
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for rows, batch in batches:
                order.append(rows)
                batch = batch.to(device)
                scores = model.score_all(batch)  # (B, N+1)
                expected = (batch.target.shape[0], n_items + 1) if n_items is not None else None
                if (
                    scores.ndim != 2
                    or scores.shape[0] != batch.target.shape[0]
                    or (expected and tuple(scores.shape) != expected)
                ):
                    raise ValueError(
                        f"{type(model).__name__}.score_all returned shape {tuple(scores.shape)}; expected "
                        f"(B, N+1) = {expected or (batch.target.shape[0], 'N+1')}."
                    )
                if exclude:
                    # out of place: score_all may hand back a tensor it keeps; padding 0 hits column 0
                    scores = scores.scatter(1, batch.history, float("-inf"))
                ranks.append(rank_of_target(scores, batch.target, ties=tie_rule).cpu())
    finally:
        model.train(was_training)
    rank_array = np.zeros(len(targets), dtype=np.int64)
    if ranks:
        rank_array[np.concatenate(order)] = torch.cat(ranks).numpy().astype(np.int64)
    seconds = time.perf_counter() - start_time
    metrics = compute_metrics(rank_array, proto.metric_keys)
    logger.info(
        "evaluate(%s): %d examples in %.2fs: %s",
        proto.name,
        len(rank_array),
        seconds,
        ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()),
    )
    return EvalResult(
        metrics=metrics,
        per_example_rank=rank_array,
        history_lengths=lengths,
        num_examples=len(rank_array),
        protocol=proto.name,
        ties=tie_rule,
        exclude_history=exclude,
        max_len=max_len,
        seconds=seconds,
        metric_keys=proto.metric_keys,
    )
