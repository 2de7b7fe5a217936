"""widen_validation: more validation targets per user, on hand-computed splits, and through a run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from shortlist.data.build import build_dataset
from shortlist.data.schema import InteractionData
from shortlist.data.sequences import SequenceSplit
from shortlist.data.splits import leave_one_out, tiger_split
from shortlist.data.validation import widen_validation
from shortlist.train.config import load_config
from shortlist.train.experiment import run_experiment

ROOT = Path(__file__).resolve().parents[1]


def _data(seqs: dict[str, list[str]]) -> InteractionData:
    users, items, times = [], [], []
    for user, seq in seqs.items():
        for item in seq:
            users.append(user)
            items.append(item)
            times.append(10 * len(times))
    frame = pl.DataFrame({"user_id": users, "item_id": items, "timestamp": times})
    return build_dataset("toy", frame, order="time")


# items are numbered by first appearance: a=1, b=2, c=3, d=4, e=5, f=6, g=7
SEQS = {
    "u1": ["a", "b", "c", "d", "e", "f"],  # train [1,2,3,4], valid 5, test 6
    "u2": ["c", "g"],  # 2 events: training only, never evaluated
    "u3": ["f", "a", "b", "c"],  # train [6,1], valid 2, test 3
    "u4": ["g", "a", "b"],  # train [7], valid 1, test 2
}


def _rows(split: SequenceSplit, name: str) -> list[tuple[int, list[int], int]]:
    ex = getattr(split, name)
    return [(int(ex.users[i]), ex.history[i].tolist(), int(ex.targets[i])) for i in range(len(ex))]


def test_three_targets_hand_computed() -> None:
    base = leave_one_out(_data(SEQS))
    s = widen_validation(base, 3)
    # u1 gives its last 2 training events, u3 one (one stays), u4 none, u2 is not evaluated
    assert [s.train[i].tolist() for i in range(4)] == [[1, 2], [3, 7], [6], [7]]
    assert _rows(s, "valid") == [
        (0, [1, 2], 3),
        (0, [1, 2, 3], 4),
        (0, [1, 2, 3, 4], 5),  # the leave-one-out target, last
        (2, [6], 1),
        (2, [6, 1], 2),
        (3, [7], 1),
    ]
    assert _rows(s, "test") == _rows(base, "test")
    # timestamps follow their events: u1's events are at 0, 10, ..., 50
    assert s.valid.target_timestamps[:3].tolist() == [20, 30, 40]
    assert s.valid.history_timestamps[1].tolist() == [0, 10, 20]
    assert s.train_timestamps[0].tolist() == [0, 10]
    assert s.summary()["valid"] == 6 and s.summary()["train_events"] == 6


def test_history_cap_applies_to_the_new_examples() -> None:
    s = widen_validation(tiger_split(_data(SEQS), max_history=2), 3)
    assert _rows(s, "valid")[:3] == [(0, [1, 2], 3), (0, [2, 3], 4), (0, [3, 4], 5)]


def test_one_target_is_the_split_itself_and_bad_values_are_refused() -> None:
    base = leave_one_out(_data(SEQS))
    assert widen_validation(base, 1) is base
    for bad in (0, -2, 2.0, True, "3"):
        with pytest.raises(ValueError, match=r"'targets' parameter of widen_validation .* Got"):
            widen_validation(base, bad)  # type: ignore[arg-type]


def test_no_event_is_lost_or_duplicated() -> None:
    """Every event of an evaluated user is in exactly one place: training, a validation target or
    the test target; the others keep their training sequence."""
    rng = np.random.default_rng(0)
    seqs = {f"u{u}": [f"i{x}" for x in rng.integers(0, 30, rng.integers(1, 12))] for u in range(40)}
    base = leave_one_out(_data(seqs))
    s = widen_validation(base, 4)
    by_user: dict[int, list[int]] = {}
    for i, u in enumerate(s.train_users.tolist()):
        by_user.setdefault(u, []).extend(s.train[i].tolist())
    for ex in (s.valid, s.test):
        for u, t in zip(ex.users.tolist(), ex.targets.tolist(), strict=True):
            by_user[u].append(t)
    # re-assembled in time order, each user's events equal the base split's full sequence
    for i, u in enumerate(base.train_users.tolist()):
        full = base.train[i].tolist()
        if u in base.valid.users:
            j = base.valid.users.tolist().index(u)
            full += [int(base.valid.targets[j]), int(base.test.targets[j])]
        assert sorted(by_user[u]) == sorted(full)
    per_user = np.bincount(s.valid.users)
    assert per_user.max() <= 4
    # each validation history is the user's events before its target, in order
    for i in range(len(s.valid)):
        u = int(s.valid.users[i])
        row = base.train[int(np.flatnonzero(base.train_users == u)[0])].tolist()
        n = len(s.valid.history[i])
        assert s.valid.history[i].tolist() == [*row, int(s.valid.targets[i])][:n]


def test_a_run_validates_on_the_wider_set(tmp_path: Path) -> None:
    overrides = {
        "dataset.params": {"n_users": 60, "n_items": 40},
        "output_dir": str(tmp_path / "run"),
        "train.epochs": 1,
        "train.progress": False,
        "train.threads": 0,
        "model.dim": 8,
        "model.max_len": 8,
        "train.batch_size": 16,
        "eval.valid_targets": 3,
    }
    cfg = load_config(ROOT / "configs" / "synthetic" / "sasrec.yaml", overrides)
    run_experiment(cfg)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["split"]["valid"] == 3 * results["split"]["test"]
    with np.load(tmp_path / "run" / "ranks.npz") as ranks:  # one rank per validation example
        assert ranks["valid.ranks"].shape == (3 * results["split"]["test"],)
        assert np.bincount(ranks["valid.users"]).max() == 3
        assert ranks["test.ranks"].shape == (results["split"]["test"],)
