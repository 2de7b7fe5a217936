"""Per-example ranks of a run's best model, kept beside its metrics for paired comparisons.

A run folder (``shortlist train``, ``benchmarks/seqrec.py``) holds ``results.json`` with the mean
metrics and ``ranks.npz`` with what they are the mean of: for each evaluation split (``valid``,
``test``), the example users (E,), targets (E,), the 0-based rank of each target (E,) under the
run's protocol and each example's history length after the protocol's cap (E,; files written
before 2026-11-30 have none). Two runs on the same split rank the same examples, so their metrics can be compared
user by user (:mod:`shortlist.eval.compare`) instead of only by their means.

Example:
    >>> save_ranks(run_dir, {"test": (examples, result)})          # doctest: +SKIP
    >>> load_ranks(run_dir).get("test").ranks.shape                  # doctest: +SKIP
    (22363,)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shortlist.atomic import atomic_path
from shortlist.data.sequences import EvalExamples
from shortlist.eval.protocols import EvalResult

__all__ = ["RANKS", "RunRanks", "SplitRanks", "load_ranks", "save_ranks"]

RANKS = "ranks.npz"
_FIELDS = ("users", "targets", "ranks")


@dataclass(frozen=True)
class SplitRanks:
    """One split's examples and ranks: ``users``, ``targets``, ``ranks``, each (E,) int64, and
    ``lengths`` (E,) int64 history lengths after the protocol's cap (None in older files)."""

    users: np.ndarray
    targets: np.ndarray
    ranks: np.ndarray
    exclude_history: bool
    lengths: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ranks)


@dataclass(frozen=True)
class RunRanks:
    """The ranks of one run folder, by split name."""

    run_dir: Path
    splits: dict[str, SplitRanks]

    def get(self, split: str) -> SplitRanks:
        """The split's ranks; KeyError naming the run and the splits it has otherwise."""
        if split not in self.splits:
            raise KeyError(
                f"{self.run_dir / RANKS} has no {split!r} split; it has {sorted(self.splits)}."
            )
        return self.splits[split]


def save_ranks(
    run_dir: str | os.PathLike[str], results: Mapping[str, tuple[EvalExamples, EvalResult]]
) -> Path:
    """Write ``run_dir/ranks.npz`` atomically from ``{split: (examples, result)}`` and return it.

    Raises ValueError if a result does not have one rank per example.
    """
    arrays: dict[str, np.ndarray] = {}
    for split, (examples, result) in results.items():
        if len(result.per_example_rank) != len(examples):
            raise ValueError(
                f"The {split!r} result has {len(result.per_example_rank)} ranks for "
                f"{len(examples)} examples: was it evaluated on other examples?"
            )
        arrays[f"{split}.users"] = np.asarray(examples.users, dtype=np.int64)
        arrays[f"{split}.targets"] = np.asarray(examples.targets, dtype=np.int64)
        arrays[f"{split}.ranks"] = np.asarray(result.per_example_rank, dtype=np.int64)
        arrays[f"{split}.exclude_history"] = np.asarray(bool(result.exclude_history))
        arrays[f"{split}.lengths"] = np.asarray(result.history_lengths, dtype=np.int64)
    path = Path(run_dir) / RANKS
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **arrays)
    return path


def load_ranks(run_dir: str | os.PathLike[str]) -> RunRanks:
    """Read ``run_dir/ranks.npz``.

    Raises:
        FileNotFoundError naming the folder (runs written before ranks were kept have none:
        ``shortlist eval RUN_DIR`` writes it from the saved best model);
        ValueError for a file whose arrays do not line up.
    """
    run_dir = Path(run_dir)
    path = run_dir / RANKS
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: the run has no per-example ranks. Runs from before ranks were kept "
            f"can write them with `shortlist eval {run_dir}` (it needs the run's best/ model)."
        )
    with np.load(path) as data:
        names = {key.rpartition(".")[0] for key in data.files}
        splits = {}
        for split in sorted(names):
            missing = [f for f in _FIELDS if f"{split}.{f}" not in data.files]
            if missing:
                raise ValueError(f"{path}: split {split!r} lacks {missing}.")
            users, targets, ranks = (data[f"{split}.{f}"] for f in _FIELDS)
            if not len(users) == len(targets) == len(ranks):
                raise ValueError(
                    f"{path}: split {split!r} has {len(users)} users, {len(targets)} targets and "
                    f"{len(ranks)} ranks; they must be equal."
                )
            key = f"{split}.exclude_history"
            exclude = bool(data[key]) if key in data.files else False
            key = f"{split}.lengths"
            lengths = data[key] if key in data.files else None
            if lengths is not None and len(lengths) != len(ranks):
                raise ValueError(
                    f"{path}: split {split!r} has {len(lengths)} lengths for {len(ranks)} ranks."
                )
            splits[split] = SplitRanks(users, targets, ranks, exclude, lengths)
    return RunRanks(run_dir, splits)
