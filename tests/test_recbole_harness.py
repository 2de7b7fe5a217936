"""The RecBole harness's resumable checkpoints (benchmarks/recbole/harness.py), without RecBole."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "recbole"))
import harness

RUN = {"token": "ml-100k-hstu-L200", "seed": 0, "model": [64, 2, 2, None, 0.5]}


def test_checkpoint_round_trip_and_no_temporary_left(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2)
    path = tmp_path / "ck" / "state.pt"
    harness.save_checkpoint(path, {"run": RUN, "model": model.state_dict(), "next_epoch": 5})
    assert [p.name for p in path.parent.iterdir()] == ["state.pt"]
    state = harness.load_checkpoint(path, dict(RUN))
    assert state is not None and state["next_epoch"] == 5
    torch.testing.assert_close(state["model"]["weight"], model.weight.detach())


def test_missing_checkpoint_is_none(tmp_path: Path) -> None:
    assert harness.load_checkpoint(tmp_path / "absent.pt", RUN) is None


def test_checkpoint_of_another_run_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.pt"
    harness.save_checkpoint(path, {"run": RUN})
    with pytest.raises(ValueError, match=r"another run \(seed: checkpoint 0 vs now 1\)"):
        harness.load_checkpoint(path, RUN | {"seed": 1})


def test_rng_state_restores_every_generator() -> None:
    saved = harness.rng_state()
    first = (random.random(), np.random.rand(), torch.rand(2))
    harness.set_rng_state(saved)
    again = (random.random(), np.random.rand(), torch.rand(2))
    assert first[:2] == again[:2]
    torch.testing.assert_close(first[2], again[2])
