"""Paired comparison of two models on the same evaluation examples, with a bootstrap interval.

A mean metric such as NDCG@10 over a few hundred or thousand users also depends on which users
were drawn into the test set, and the gaps between models are often a few thousandths. Comparing
two models' means alone cannot tell such a gap from the draw of the users. This module compares
them example by example:

1. each run folder's ``ranks.npz`` (:mod:`shortlist.eval.ranks`) gives the per-example ranks;
2. every run of a group must rank the same examples (same users and targets, same order);
3. the per-example metric values (:func:`shortlist.eval.metrics.metric_values`) are averaged over
   the group's runs (its seeds), giving one value per example for model A and one for model B;
4. the examples are resampled with replacement ``n_boot`` times (a paired bootstrap: A and B get
   the same draw), and the interval of ``mean_A - mean_B`` and of ``mean_A / mean_B`` is read off
   the percentiles; ``p_not_above`` is the share of draws where A is not above B.

The interval covers the sampling of the examples (users), the part of the uncertainty that more
seeds cannot remove; the spread over seeds is in each group's per-seed means.

Example:
    >>> c = compare_runs(["runs/ksa-s0", "runs/ksa-s1"], ["runs/sasrec-s0"], "ndcg@10")  # doctest: +SKIP
    >>> print(c.summary())  # means, A/B with its interval, P(A <= B)                        # doctest: +SKIP
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shortlist.eval.metrics import metric_values, parse_metric
from shortlist.eval.ranks import SplitRanks, load_ranks

__all__ = [
    "PairedComparison",
    "check_aligned",
    "check_one_model",
    "compare_runs",
    "expand_runs",
    "paired_bootstrap",
]

_BLOCK_ELEMENTS = 1 << 22  # resampled indices held at once (32 MiB of int64), whatever E is


@dataclass(frozen=True)
class PairedComparison:
    """Model A against model B on one split and metric (see the module docstring).

    Attributes:
        metric, split: what was compared.
        n_examples: E, examples per run.
        runs_a, runs_b: the run folders of each group.
        seed_means_a, seed_means_b: the metric of each run of the group.
        mean_a, mean_b: the metric of the group (mean over its runs).
        diff, ratio: ``mean_a - mean_b`` and ``mean_a / mean_b`` (NaN when mean_b is 0).
        diff_ci, ratio_ci: the bootstrap's central ``confidence`` intervals.
        p_not_above: share of bootstrap draws with ``mean_a <= mean_b``.
        n_boot, confidence, seed: the bootstrap's settings.
    """

    metric: str
    split: str
    n_examples: int
    runs_a: tuple[str, ...]
    runs_b: tuple[str, ...]
    seed_means_a: tuple[float, ...]
    seed_means_b: tuple[float, ...]
    mean_a: float
    mean_b: float
    diff: float
    ratio: float
    diff_ci: tuple[float, float]
    ratio_ci: tuple[float, float]
    p_not_above: float
    n_boot: int
    confidence: float
    seed: int

    def summary(self) -> str:
        """One line: means, ratio with its interval, and p_not_above."""
        pct = round(self.confidence * 100)
        return (
            f"{self.metric} ({self.split}, {self.n_examples} examples): A {self.mean_a:.4f} vs "
            f"B {self.mean_b:.4f}; A/B {self.ratio:.3f} [{pct}% CI {self.ratio_ci[0]:.3f}-"
            f"{self.ratio_ci[1]:.3f}], A-B {self.diff:+.4f} [{self.diff_ci[0]:+.4f}, "
            f"{self.diff_ci[1]:+.4f}], P(A <= B) {self.p_not_above:.3f}"
        )


def paired_bootstrap(
    values_a: np.ndarray,
    values_b: np.ndarray,
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> dict[str, Any]:
    """Bootstrap of the paired per-example values (E,) of A and B (the same examples, in order).

    ``groups`` (E,), e.g. the examples' users: when a group holds several examples (validation
    with ``eval.valid_targets`` > 1), whole groups are resampled, since one user's examples are not
    independent draws; each draw's means are then over the examples of the drawn groups. With one
    example per group (or ``groups`` None) the examples themselves are resampled.

    Returns ``diff``, ``ratio``, ``diff_ci``, ``ratio_ci`` (central ``confidence`` intervals of
    the resampled ``mean_a - mean_b`` and ``mean_a / mean_b``) and ``p_not_above`` (share of draws
    with ``mean_a <= mean_b``). Deterministic for a given ``seed``.
    """
    a = np.asarray(values_a, dtype=np.float64)
    b = np.asarray(values_b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(
            f"paired_bootstrap expects two (E,) arrays of the same examples. Got shapes "
            f"{a.shape} and {b.shape} instead."
        )
    if a.size == 0:
        raise ValueError("paired_bootstrap needs at least one example. Got 0 instead.")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 10:
        raise ValueError(f"The 'n_boot' parameter must be an int >= 10. Got {n_boot!r} instead.")
    if not 0.0 < confidence < 1.0:
        raise ValueError(
            f"The 'confidence' parameter must be in (0, 1). Got {confidence!r} instead."
        )
    if groups is not None and np.asarray(groups).shape != a.shape:
        raise ValueError(
            f"The 'groups' parameter must have one entry per example, shape {a.shape}. Got shape "
            f"{np.asarray(groups).shape} instead."
        )
    # per group: the sums of A's and B's values and the number of examples, (G,) each
    _, inverse = np.unique(np.arange(a.size) if groups is None else groups, return_inverse=True)
    count = np.bincount(inverse).astype(np.float64)
    sum_a, sum_b = np.bincount(inverse, weights=a), np.bincount(inverse, weights=b)
    one_each = bool((count == 1).all())
    rng = np.random.default_rng(seed)
    G = count.size
    means_a, means_b = np.empty(n_boot), np.empty(n_boot)
    block = max(1, min(n_boot, _BLOCK_ELEMENTS // G))  # draws per block
    for start in range(0, n_boot, block):
        n = min(block, n_boot - start)
        idx = rng.integers(0, G, size=(n, G))  # (n, G) resampled group indices
        if one_each:  # one example a group: draw the examples themselves (as without groups)
            means_a[start : start + n] = a[idx].mean(axis=1)
            means_b[start : start + n] = b[idx].mean(axis=1)
        else:
            drawn = count[idx].sum(axis=1)
            means_a[start : start + n] = sum_a[idx].sum(axis=1) / drawn
            means_b[start : start + n] = sum_b[idx].sum(axis=1) / drawn
    diffs = means_a - means_b
    ratios = np.where(means_b > 0, means_a / np.where(means_b > 0, means_b, 1.0), np.nan)
    tail = (1.0 - confidence) / 2 * 100
    mean_a, mean_b = float(a.mean()), float(b.mean())

    def interval(x: np.ndarray) -> tuple[float, float]:
        lo, hi = np.nanpercentile(x, [tail, 100 - tail]) if np.isfinite(x).any() else (np.nan,) * 2
        return float(lo), float(hi)

    return {
        "diff": mean_a - mean_b,
        "ratio": mean_a / mean_b if mean_b > 0 else float("nan"),
        "diff_ci": interval(diffs),
        "ratio_ci": interval(ratios),
        "p_not_above": float((diffs <= 0).mean()),
    }


def expand_runs(patterns: Sequence[str]) -> list[Path]:
    """Run folders from paths or glob patterns (a pattern quoted on the command line is expanded
    here), each pattern's matches sorted; FileNotFoundError naming a pattern that matches nothing."""
    runs: list[Path] = []
    for pattern in patterns:
        found = sorted(glob.glob(pattern))
        if not found:
            raise FileNotFoundError(f"no run folder matches {pattern!r}.")
        runs.extend(Path(f) for f in found)
    return runs


def check_one_model(runs: Sequence[str | os.PathLike[str]], label: str) -> None:
    """ValueError unless the runs that have a ``results.json`` are one config's seeds: the same run
    name, no training seed twice. A glob can match more than meant (``*-elastic-s*`` also matches
    ``*-elastic-sw200-s0``), and the pooled seeds would then mix two models."""
    seen: dict[int, Path] = {}
    first: tuple[str, Path] | None = None
    for run in map(Path, runs):
        path = run / "results.json"
        if not path.exists():
            continue
        results = json.loads(path.read_text())
        name, seed = results.get("name"), results.get("train_config", {}).get("seed")
        if first is None:
            first = (name, run)
        elif name != first[0]:
            raise ValueError(
                f"{label}: {first[1]} ({first[0]!r}) and {run} ({name!r}) are runs of different "
                "configs; narrow the pattern (e.g. '-s[0-9]*' for the seed suffix)."
            )
        if seed is not None and seed in seen:
            raise ValueError(
                f"{label}: {seen[seed]} and {run} both have training seed {seed}: pooled, they "
                "would count one draw twice."
            )
        if seed is not None:
            seen[seed] = run


def _group(runs: Sequence[str | os.PathLike[str]], split: str, name: str) -> list[SplitRanks]:
    if not runs:
        raise ValueError(f"compare_runs needs at least one run folder for {name}. Got none.")
    return [load_ranks(r).get(split) for r in runs]


def check_aligned(
    ranks: Sequence[SplitRanks], runs: Sequence[str | os.PathLike[str]], split: str
) -> None:
    """Every run must rank the same examples as the first (users and targets, in order)."""
    first = ranks[0]
    for run, r in zip(runs[1:], ranks[1:], strict=True):
        if not (np.array_equal(r.users, first.users) and np.array_equal(r.targets, first.targets)):
            raise ValueError(
                f"{run} and {runs[0]} did not rank the same {split!r} examples ({len(r)} and "
                f"{len(first)} examples, or other users/targets): compare runs of one split only."
            )
        if r.exclude_history != first.exclude_history:
            raise ValueError(
                f"{run} and {runs[0]} ranked the {split!r} examples with different history "
                f"masking ({r.exclude_history} and {first.exclude_history}): compare like for like."
            )


def compare_runs(
    runs_a: Sequence[str | os.PathLike[str]],
    runs_b: Sequence[str | os.PathLike[str]],
    metric: str = "ndcg@10",
    split: str = "test",
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedComparison:
    """Compare the runs of model A (e.g. its seeds) with those of model B on ``split``.

    Raises:
        FileNotFoundError for a run without ``ranks.npz``; ValueError when the runs did not rank
        the same examples, or for a bad metric key.
    """
    parse_metric(metric)
    ranks_a, ranks_b = _group(runs_a, split, "A"), _group(runs_b, split, "B")
    runs = [*runs_a, *runs_b]
    check_aligned([*ranks_a, *ranks_b], runs, split)
    per_run_a = [metric_values(r.ranks, metric) for r in ranks_a]  # each (E,)
    per_run_b = [metric_values(r.ranks, metric) for r in ranks_b]
    a, b = np.mean(per_run_a, axis=0), np.mean(per_run_b, axis=0)  # (E,) mean over the seeds
    stats = paired_bootstrap(
        a, b, n_boot=n_boot, confidence=confidence, seed=seed, groups=ranks_a[0].users
    )
    return PairedComparison(
        metric=metric,
        split=split,
        n_examples=int(a.size),
        runs_a=tuple(str(Path(r)) for r in runs_a),
        runs_b=tuple(str(Path(r)) for r in runs_b),
        seed_means_a=tuple(float(v.mean()) for v in per_run_a),
        seed_means_b=tuple(float(v.mean()) for v in per_run_b),
        mean_a=float(a.mean()),
        mean_b=float(b.mean()),
        n_boot=n_boot,
        confidence=confidence,
        seed=seed,
        **stats,
    )
