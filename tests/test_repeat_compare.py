"""benchmarks/repeat_compare.py: two jobs' runs paired by seed, ranks compared example by example."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import repeat_compare


def _run(folder: Path, seed: int, ndcg: float, best: int, test_ranks: list[int]) -> None:
    folder.mkdir(parents=True)
    results = {"train_config": {"seed": seed}, "test": {"ndcg@10": ndcg}, "best_epoch": best}
    (folder / "results.json").write_text(json.dumps(results))
    arrays = {}
    for split, ranks in (("valid", [1, 5, 9]), ("test", test_ranks)):
        arrays[f"{split}.users"] = np.arange(3)
        arrays[f"{split}.targets"] = np.array([4, 5, 6])
        arrays[f"{split}.ranks"] = np.array(ranks)
    np.savez(folder / "ranks.npz", **arrays)


def test_pairs_by_seed_and_counts_the_seeds_that_repeated(tmp_path: Path) -> None:
    # job A: seeds 0 and 1 (folder names need not carry the seed); job B: seeds 1, 0 and 2
    _run(tmp_path / "a" / "x", 0, 0.10, 7, [1, 2, 3])
    _run(tmp_path / "a" / "y", 1, 0.20, 8, [1, 2, 3])
    _run(tmp_path / "b" / "p", 1, 0.20, 8, [1, 2, 3])  # a repeat
    _run(tmp_path / "b" / "q", 0, 0.12, 9, [1, 4, 5])  # two test ranks differ
    _run(tmp_path / "b" / "r", 2, 0.30, 1, [1, 2, 3])  # no partner in A: left out
    rows = repeat_compare.compare_group("m", str(tmp_path / "a" / "*"), str(tmp_path / "b" / "*"))
    assert [v for v, _ in rows] == ["seed=0", "seed=1", "2 seeds"]
    seed0, seed1, summary = (m for _, m in rows)
    assert seed0["test_same_ranks"] == 0.0 and seed0["test_ranks_differing"] == 2.0
    assert seed0["valid_same_ranks"] == 1.0 and seed0["best_epoch_b"] == 9.0
    assert seed1["test_same_ranks"] == 1.0
    assert summary["seeds_same_ranks"] == 1.0
    assert summary["max_ndcg@10_gap"] == pytest.approx(0.02)


def test_two_runs_of_one_seed_in_a_job_are_an_error(tmp_path: Path) -> None:
    _run(tmp_path / "a" / "x", 0, 0.1, 1, [1, 2, 3])
    _run(tmp_path / "a" / "y", 0, 0.1, 1, [1, 2, 3])
    with pytest.raises(ValueError, match="both have seed 0"):
        repeat_compare.by_seed(str(tmp_path / "a" / "*"))


def test_runs_of_other_examples_are_an_error(tmp_path: Path) -> None:
    _run(tmp_path / "a" / "x", 0, 0.1, 1, [1, 2, 3])
    _run(tmp_path / "b" / "x", 0, 0.1, 1, [1, 2, 3])
    with np.load(tmp_path / "b" / "x" / "ranks.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["test.targets"] = np.array([4, 5, 7])
    np.savez(tmp_path / "b" / "x" / "ranks.npz", **arrays)
    with pytest.raises(ValueError, match="did not rank the same 'test' examples"):
        repeat_compare.compare_pair(tmp_path / "a" / "x", tmp_path / "b" / "x")
