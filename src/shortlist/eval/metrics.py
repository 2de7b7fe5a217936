"""Ranking metrics for leave-one-out evaluation: one held-out target per example.

Notation:
    B   examples in a batch of scores
    N   items (1..N; column 0 of a score matrix is padding)
    E   evaluated examples

Everything starts from the 0-based rank of the target among the N candidates (:func:`rank_of_target`);
with a single relevant item every metric is a function of that rank:

| metric | per example | key |
|---|---|---|
| HR@k (= Recall@k with one target) | ``1[rank < k]`` | ``hr@k``, ``recall@k`` |
| NDCG@k (the ideal DCG is 1) | ``1 / log2(rank + 2)`` if ``rank < k`` else 0 | ``ndcg@k`` |
| MRR | ``1 / (rank + 1)`` | ``mrr`` |

The metric functions average over the (E,) ranks (torch or NumPy) in float64 and return a Python
float; :func:`compute_metrics` evaluates a list of keys such as ``("hr@10", "ndcg@10", "mrr")``.

Ties. ``rank_of_target(..., ties="optimistic")`` (the default) counts the candidates with a
strictly greater score than the target; ``ties="pessimistic"`` counts those with a greater or
equal score, the target itself excepted. The two agree unless the target ties another item, and
they bracket every tie-breaking order. The anchors break ties implicitly: generative-recommenders
(``research/data/eval.py``, ``eval_metrics_v2_from_tensors``) takes ``torch.topk`` over the
candidate scores (``MIPSBruteForceTopK``, k = min(2500, candidates)), finds the target's 1-based
position in that list (``eval_ranks``; a target outside the top 2,500 gets rank 2,501) and computes
``hr@k = eval_ranks <= k``, ``ndcg@k = 1 / log2(eval_ranks + 1)`` and ``mrr = 1 / eval_ranks``:
our formulas with rank = eval_ranks - 1, ties in whatever order ``torch.topk`` returns them.
RecBole's full-sort evaluator also takes ``torch.topk``. With real-valued scores from a trained
model exact ties are rare, so both rules give the anchors' numbers; report both when they differ.

A target scored ``-inf`` (excluded, e.g. a seen item when history is masked) is a miss at every
cut-off: its rank is N. Other ``-inf`` items never outrank anything, and NaN scores of other
items never count as greater; a NaN target score raises an error.

Example:
    >>> scores = torch.tensor([[float("-inf"), 0.1, 0.9, 0.5], [float("-inf"), 0.3, 0.3, 0.2]])
    >>> rank_of_target(scores, torch.tensor([3, 1])).tolist()
    [1, 0]
    >>> rank_of_target(scores, torch.tensor([3, 1]), ties="pessimistic").tolist()
    [1, 1]
    >>> hit_rate_at_k(np.array([0, 1, 4, 12]), 5)
    0.75
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal, TypeVar

import numpy as np
import torch

from shortlist.registry import Registry

Ties = Literal["optimistic", "pessimistic"]
TIES: tuple[str, ...] = ("optimistic", "pessimistic")

ArrayT = TypeVar("ArrayT", torch.Tensor, np.ndarray)

__all__ = [
    "METRICS",
    "TIES",
    "Ties",
    "compute_metrics",
    "hit_rate_at_k",
    "metric_values",
    "mrr",
    "ndcg_at_k",
    "parse_metric",
    "rank_of_target",
    "recall_at_k",
]


# -- ranks -------------------------------------------------------------------------------------
def rank_of_target(scores: ArrayT, targets: ArrayT, *, ties: Ties = "optimistic") -> ArrayT:
    """0-based rank of each row's target among the row's candidates.

    Args:
        scores: (B, N+1) scores of every item; column 0 is padding (normally ``-inf``), excluded
            items are ``-inf``.
        targets: (B,) target item of each row, in 1..N.
        ties: ``"optimistic"``: rank = number of items with a strictly greater score;
            ``"pessimistic"``: number of other items with a greater or equal score.

    Returns:
        (B,) int64 ranks in [0, N], of the same kind (torch or NumPy) as ``scores``; a target
        scored ``-inf`` gets rank N (a miss at every cut-off).

    Memory: one (B, N+1) boolean temporary; the work is one comparison and one row sum.
    """
    if ties not in TIES:
        raise ValueError(
            f"The 'ties' parameter of rank_of_target must be one of {TIES}. Got {ties!r} instead."
        )
    as_numpy = isinstance(scores, np.ndarray)
    s = torch.from_numpy(scores) if as_numpy else scores
    t = torch.as_tensor(targets, device=s.device)
    if s.ndim != 2 or t.shape != (s.shape[0],):
        raise ValueError(
            f"rank_of_target expects scores (B, N+1) and targets (B,). Got {tuple(s.shape)} and {tuple(t.shape)} instead."
        )
    if t.dtype.is_floating_point or t.dtype == torch.bool:
        raise TypeError(f"rank_of_target expects integer targets. Got dtype {t.dtype} instead.")
    n_items = s.shape[1] - 1
    t = t.long()
    if t.numel() and (int(t.min()) < 1 or int(t.max()) > n_items):
        bad = int(t[(t < 1) | (t > n_items)][0])
        raise ValueError(
            f"Targets must be item indices in 1..{n_items} (the scores have {n_items + 1} columns, "
            f"column 0 is padding). Got target {bad} instead."
        )
    target_scores = s.gather(1, t[:, None])  # (B, 1)
    if torch.isnan(target_scores).any():
        row = int(torch.isnan(target_scores[:, 0]).nonzero()[0])
        raise ValueError(
            f"The score of the target is NaN in row {row} (target item {int(t[row])})."
        )
    if ties == "optimistic":
        ranks = (s > target_scores).sum(dim=1)  # (B,)
    else:
        ranks = (s >= target_scores).sum(dim=1) - 1  # (B,) minus the target itself
    ranks = torch.where(target_scores[:, 0] == float("-inf"), n_items, ranks)
    return ranks.numpy() if as_numpy else ranks


# -- metrics from ranks ------------------------------------------------------------------------
def _ranks_array(ranks: torch.Tensor | np.ndarray | Sequence[int], owner: str) -> np.ndarray:
    """(E,) float64 copy of the ranks, checked."""
    if isinstance(ranks, torch.Tensor):
        ranks = ranks.detach().cpu().numpy()
    r = np.asarray(ranks)
    if r.ndim != 1:
        raise ValueError(f"{owner} expects a (E,) array of ranks. Got shape {r.shape} instead.")
    if r.size and (
        r.dtype.kind not in "iuf"
        or r.min() < 0
        or (r.dtype.kind == "f" and not np.all(r == np.floor(r)))
    ):
        raise ValueError(
            f"{owner} expects non-negative integer ranks (0 = top). Got {r[:5].tolist()}... instead."
        )
    return r.astype(np.float64)


def _check_k(k: int, owner: str) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"The 'k' parameter of {owner} must be an int >= 1. Got {k!r} instead.")
    return int(k)


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else math.nan


def _hits(r: np.ndarray, k: int) -> np.ndarray:
    """(E,) 1.0 where the target is in the top k (``rank < k``), else 0.0."""
    return (r < k).astype(np.float64)


def _ndcg_values(r: np.ndarray, k: int) -> np.ndarray:
    """(E,) ``1 / log2(rank + 2)`` for hits (``rank < k``), 0 otherwise."""
    return np.where(r < k, 1.0 / np.log2(r + 2.0), 0.0)


def _reciprocal_ranks(r: np.ndarray) -> np.ndarray:
    """(E,) ``1 / (rank + 1)``."""
    return 1.0 / (r + 1.0)


def hit_rate_at_k(ranks: torch.Tensor | np.ndarray | Sequence[int], k: int) -> float:
    """HR@k: share of examples whose target is in the top k (``rank < k``); NaN for no examples."""
    k = _check_k(k, "hit_rate_at_k")
    return _mean(_hits(_ranks_array(ranks, "hit_rate_at_k"), k))


def recall_at_k(ranks: torch.Tensor | np.ndarray | Sequence[int], k: int) -> float:
    """Recall@k with one relevant item per example: the same number as :func:`hit_rate_at_k`."""
    k = _check_k(k, "recall_at_k")
    return _mean(_hits(_ranks_array(ranks, "recall_at_k"), k))


def ndcg_at_k(ranks: torch.Tensor | np.ndarray | Sequence[int], k: int) -> float:
    """NDCG@k with one relevant item: mean of ``1 / log2(rank + 2)`` over hits (``rank < k``), 0 otherwise."""
    k = _check_k(k, "ndcg_at_k")
    return _mean(_ndcg_values(_ranks_array(ranks, "ndcg_at_k"), k))


def mrr(ranks: torch.Tensor | np.ndarray | Sequence[int]) -> float:
    """Mean reciprocal rank: mean of ``1 / (rank + 1)`` (no cut-off)."""
    return _mean(_reciprocal_ranks(_ranks_array(ranks, "mrr")))


# -- metric keys -------------------------------------------------------------------------------
# per-example values (E,) from (E,) float ranks (and k): a metric is the mean of its values
METRICS: Registry[Callable[..., np.ndarray]] = Registry("metric")
METRICS.add("hr", _hits)
METRICS.add("recall", _hits)  # one relevant item per example: the same values as HR
METRICS.add("ndcg", _ndcg_values)
METRICS.add("mrr", _reciprocal_ranks)

_NO_CUTOFF = ("mrr",)


def parse_metric(key: str) -> tuple[str, int | None]:
    """``"ndcg@10"`` -> ``("ndcg", 10)``, ``"mrr"`` -> ``("mrr", None)``; keys are lower case.

    Raises:
        UnknownNameError (a ValueError) for an unknown metric name, ValueError for a bad cut-off.
    """
    if not isinstance(key, str) or key != key.lower():
        raise ValueError(
            f"Metric keys are lower-case strings like 'hr@10', 'ndcg@10' or 'mrr'. Got {key!r} instead."
        )
    name, sep, cut = key.partition("@")
    METRICS.get(name)  # unknown names list the valid ones
    if name in _NO_CUTOFF:
        if sep:
            raise ValueError(f"The metric {name!r} takes no cut-off. Got {key!r} instead.")
        return name, None
    if not sep or not cut.isdigit() or int(cut) < 1:
        raise ValueError(
            f"The metric {name!r} needs a cut-off >= 1, as in '{name}@10'. Got {key!r} instead."
        )
    return name, int(cut)


def compute_metrics(
    ranks: torch.Tensor | np.ndarray | Sequence[int], keys: Sequence[str]
) -> dict[str, float]:
    """Each metric of ``keys`` (e.g. ``("hr@10", "ndcg@10", "mrr")``) over the (E,) ranks, in key order.

    Example:
        >>> compute_metrics(np.array([0, 3]), ["hr@1", "mrr"])
        {'hr@1': 0.5, 'mrr': 0.625}
    """
    r = _ranks_array(ranks, "compute_metrics")
    return {key: _mean(_values(r, key)) for key in keys}


def _values(r: np.ndarray, key: str) -> np.ndarray:
    """(E,) values of the metric ``key`` over checked float ranks ``r``."""
    name, k = parse_metric(key)  # k, when present, is an int >= 1
    fn = METRICS.get(name)
    return fn(r) if k is None else fn(r, k)


def metric_values(ranks: torch.Tensor | np.ndarray | Sequence[int], key: str) -> np.ndarray:
    """(E,) float64 per-example values of the metric ``key`` whose mean :func:`compute_metrics` gives
    (``"ndcg@10"``: ``1 / log2(rank + 2)`` for hits, else 0); for paired comparisons of two models
    on the same examples (:mod:`shortlist.eval.compare`).

    Example:
        >>> metric_values(np.array([0, 3, 20]), "hr@10").tolist()
        [1.0, 1.0, 0.0]
    """
    return _values(_ranks_array(ranks, "metric_values"), key)
