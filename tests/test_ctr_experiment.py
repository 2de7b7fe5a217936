"""A CTR experiment config (protocol ctr) trains through the common trainer and the experiment runner
on an ML-1M fixture in the official format, and the benchmark's prepared-file path loads the same data."""

from __future__ import annotations

import json
from pathlib import Path

from shortlist.data.ctr import CTRData, load_ctr_dataset
from shortlist.train.config import load_config
from shortlist.train.experiment import run_experiment
from test_ctr_data import fixture_ratings, write_ml1m

ROOT = Path(__file__).resolve().parents[1]


def test_ml1m_ctr_config_runs_end_to_end(tmp_path: Path) -> None:
    folder = write_ml1m(tmp_path / "ml-1m", fixture_ratings())
    overrides = {
        "dataset.data_dir": str(folder),
        "output_dir": str(tmp_path / "run"),
        "train.epochs": 2,
        "train.batch_size": 16,
        "train.progress": False,
        "train.threads": 0,
        "model.embed_dim": 4,
        "model.hidden": [8],
    }
    cfg = load_config(ROOT / "configs" / "ml-1m-ctr" / "can.yaml", overrides)
    result = run_experiment(cfg)
    assert set(result.test) == {"auc", "gauc", "logloss"}
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["protocol"] == "ctr" and saved["model"] == "can"
    assert saved["split"]["train"] == 78 and saved["best_epoch"] in (1, 2)
    # the prepared-file route (benchmarks/ctr.py prepare / run) gives the same rows
    data = load_ctr_dataset("ml-1m-ctr", data_dir=folder)
    path = data.save(tmp_path / "ml.npz")
    again = load_ctr_dataset("ml-1m-ctr", prepared=str(path))
    assert isinstance(again, CTRData)
    assert (again.parts["test"].columns["item_id"] == data.parts["test"].columns["item_id"]).all()


def test_same_seed_same_run_different_seed_different_weights(tmp_path: Path) -> None:
    """The seed fixes the initial weights as well as the batch order: two runs of one config and
    seed give the same results; another seed does not."""
    folder = write_ml1m(tmp_path / "ml-1m", fixture_ratings())
    results = []
    for run, seed in (("a", 0), ("b", 0), ("c", 1)):
        overrides = {
            "dataset.data_dir": str(folder),
            "output_dir": str(tmp_path / run),
            "train.epochs": 1,
            "train.batch_size": 16,
            "train.progress": False,
            "train.threads": 0,
            "train.seed": seed,
            "model.embed_dim": 4,
            "model.hidden": [8],
        }
        cfg = load_config(ROOT / "configs" / "ml-1m-ctr" / "deepfm.yaml", overrides)
        results.append(run_experiment(cfg).valid["logloss"])
    assert results[0] == results[1]
    assert results[0] != results[2]
