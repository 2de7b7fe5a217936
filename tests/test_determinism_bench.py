"""benchmarks/determinism.py: reading a run folder and comparing repeats (no training here)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import determinism


def _run(losses: list[float], test_ndcg: float, epoch_s: list[float]) -> dict[str, Any]:
    return {
        "loss": losses,
        "valid": [{"ndcg@10": 0.1 * i} for i in range(len(losses))],
        "test": {"ndcg@10": test_ndcg},
        "epoch_s": epoch_s,
    }


def test_read_run_keeps_epoch_records_only(tmp_path: Path) -> None:
    lines = [
        {"type": "train", "epoch": 1, "step": 3, "loss": 9.0},
        {"type": "epoch", "epoch": 1, "loss": 2.5, "train_s": 4.0, "valid": {"ndcg@10": 0.1}},
        {"type": "epoch", "epoch": 2, "loss": 2.0, "train_s": 1.0, "valid": {"ndcg@10": 0.2}},
    ]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    (tmp_path / "results.json").write_text(json.dumps({"test": {"ndcg@10": 0.3}}))
    run = determinism.read_run(tmp_path)
    assert run == {
        "loss": [2.5, 2.0],
        "valid": [{"ndcg@10": 0.1}, {"ndcg@10": 0.2}],
        "test": {"ndcg@10": 0.3},
        "epoch_s": [4.0, 1.0],
    }


def test_identical_repeats() -> None:
    a = _run([3.0, 2.0], 0.05, [9.0, 1.0])
    b = _run([3.0, 2.0], 0.05, [8.0, 3.0])
    out = determinism.compare_runs([a, b])
    assert out["identical_runs_ratio"] == 1.0
    assert out["max_loss_diff"] == 0.0 and out["max_test_ndcg@10_diff"] == 0.0
    assert out["epoch_s"] == 2.0  # the median of the epochs after each run's first: 1.0 and 3.0
    assert out["repeats"] == 2.0


def test_differing_repeats_by_hand() -> None:
    first = _run([3.0, 2.0], 0.05, [1.0, 1.0])
    same = _run([3.0, 2.0], 0.05, [1.0, 1.0])
    drift = _run([3.0, 2.25], 0.0625, [1.0, 1.0])
    out = determinism.compare_runs([first, same, drift])
    assert out["identical_runs_ratio"] == 0.5  # one of the two repeats matches the first
    assert out["max_loss_diff"] == pytest.approx(0.25)
    assert out["max_test_ndcg@10_diff"] == pytest.approx(0.0125)
    # a difference in the validation metrics alone also counts
    other_valid = _run([3.0, 2.0], 0.05, [1.0, 1.0])
    other_valid["valid"][1] = {"ndcg@10": 0.5}
    assert determinism.compare_runs([first, other_valid])["identical_runs_ratio"] == 0.0


def test_compare_needs_two_runs_and_cli_checks() -> None:
    with pytest.raises(ValueError, match="at least two runs"):
        determinism.compare_runs([_run([1.0], 0.1, [1.0])])
    with pytest.raises(SystemExit):
        determinism.main(["--config", "c.yaml", "--split", "s.npz", "--repeats", "1"])
    with pytest.raises(SystemExit):
        determinism.main(["--config", "c.yaml", "--split", "s.npz", "--modes", "maybe"])
