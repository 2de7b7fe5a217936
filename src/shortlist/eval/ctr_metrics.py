"""CTR metrics in NumPy: AUC, GAUC and log loss (the metrics of RecBole's CTR benchmark and BARS).

Notation: n rows, each with a label y in {0, 1}, a predicted probability p and a user u.

- ``auc``: the probability that a random positive scores above a random negative, ties counted 1/2
  (Mann-Whitney U / (n_pos * n_neg), computed from average ranks);
- ``gauc``: per-user AUC averaged with weights = the user's number of rows (impressions), over the
  users that have both a positive and a negative row; users with one class only are skipped (their
  AUC is undefined), as in DIN's GAUC and RecBole's GAUC;
- ``logloss``: mean of -[y log p + (1 - y) log(1 - p)], p clipped to [eps, 1 - eps].

Example:
    >>> auc(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.1]))
    0.75
"""

from __future__ import annotations

import numpy as np

EPS = 1e-15


def _check(labels: np.ndarray, scores: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels, dtype=np.float64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"{name}: labels {y.shape} and scores {s.shape} differ in length.")
    if not np.isin(y, (0.0, 1.0)).all():
        bad = y[~np.isin(y, (0.0, 1.0))][0]
        raise ValueError(f"{name}: labels must be 0 or 1; got {float(bad)!r}.")
    if not np.isfinite(s).all():
        raise ValueError(f"{name}: scores must be finite; got {float(s[~np.isfinite(s)][0])!r}.")
    return y, s


def _average_ranks(s: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """1-based ranks of ``s`` (within each group when given), ties given their average rank."""
    n = len(s)
    g = np.zeros(n, dtype=np.int64) if groups is None else np.asarray(groups)
    order = np.lexsort((s, g))
    s_sorted, g_sorted = s[order], g[order]
    new_group = np.r_[True, g_sorted[1:] != g_sorted[:-1]]
    group_start = np.maximum.accumulate(np.where(new_group, np.arange(n), 0))
    pos = np.arange(n) - group_start + 1.0  # rank within the group
    new_run = new_group | np.r_[True, s_sorted[1:] != s_sorted[:-1]]
    run_id = np.cumsum(new_run) - 1
    run_sum = np.bincount(run_id, weights=pos)
    run_len = np.bincount(run_id)
    ranks = np.empty(n)
    ranks[order] = (run_sum / run_len)[run_id]
    return ranks


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve; raises ValueError when only one class is present."""
    y, s = _check(labels, scores, "auc")
    n_pos = y.sum()
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(
            f"auc: needs both positive and negative labels; got {int(n_pos)} positives and {int(n_neg)} negatives."
        )
    r = _average_ranks(s)
    return float((r[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def gauc(labels: np.ndarray, scores: np.ndarray, users: np.ndarray) -> float:
    """Impression-weighted mean of per-user AUC over users with both classes (module docstring).

    Returns NaN when no user has both classes.
    """
    y, s = _check(labels, scores, "gauc")
    u = np.asarray(users).ravel()
    if u.shape != y.shape:
        raise ValueError(f"gauc: users {u.shape} and labels {y.shape} differ in length.")
    _, inv = np.unique(u, return_inverse=True)
    ranks = _average_ranks(s, inv)
    count = np.bincount(inv).astype(np.float64)
    n_pos = np.bincount(inv, weights=y)
    n_neg = count - n_pos
    rank_pos = np.bincount(inv, weights=ranks * y)
    both = (n_pos > 0) & (n_neg > 0)
    if not both.any():
        return float("nan")
    per_user = (rank_pos[both] - n_pos[both] * (n_pos[both] + 1) / 2) / (n_pos[both] * n_neg[both])
    return float((per_user * count[both]).sum() / count[both].sum())


def logloss(labels: np.ndarray, probs: np.ndarray, eps: float = EPS) -> float:
    """Mean binary cross-entropy of probabilities ``probs`` (clipped to [eps, 1 - eps])."""
    y, p = _check(labels, probs, "logloss")
    p = np.clip(p, eps, 1 - eps)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def ctr_metrics(labels: np.ndarray, probs: np.ndarray, users: np.ndarray) -> dict[str, float]:
    """``{"auc", "gauc", "logloss"}`` of one evaluation set."""
    return {
        "auc": auc(labels, probs),
        "gauc": gauc(labels, probs, users),
        "logloss": logloss(labels, probs),
    }
