"""The command line, through typer's test runner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import ML100K_RATINGS, write_ml100k
from shortlist.cli import app, parse_overrides
from shortlist.eval.metrics import compute_metrics
from shortlist.eval.ranks import load_ranks

runner = CliRunner()


def test_data_list_names_every_dataset(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "list", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for name in (
        "ml-100k",
        "ml-1m",
        "ml-latest-small",
        "amazon-beauty",
        "amazon-scientific",
        "microlens",
        "synthetic",
    ):
        assert name in result.output


def test_stats_json_and_plot(tmp_path: Path) -> None:
    folder = write_ml100k(tmp_path / "ml-100k", ML100K_RATINGS)
    png = tmp_path / "lengths.png"
    result = runner.invoke(
        app, ["data", "stats", "ml-100k", "--data-dir", str(folder), "--json", "--plot", str(png)]
    )
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout[: result.stdout.rindex("}") + 1])
    assert (stats["users"], stats["items"], stats["interactions"]) == (3, 4, 8)
    assert stats["length_max"] == 4 and stats["order"] == "time"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_prepare_log_file_with_column_mapping(tmp_path: Path) -> None:
    log = tmp_path / "events.csv"
    log.write_text("uid,vid,ts,click\n7,a,3,1\n7,b,1,0\n8,a,2,1\n")
    result = runner.invoke(
        app,
        [
            "data",
            "prepare",
            str(log),
            "--user",
            "uid",
            "--item",
            "vid",
            "--time",
            "ts",
            "--label",
            "click",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "users=2, items=2, interactions=3" in result.output


def test_bad_input_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    folder = write_ml100k(tmp_path / "ml-100k", ML100K_RATINGS)
    (folder / "u.data").write_text("1\t1\t5\n")
    result = runner.invoke(app, ["data", "prepare", "ml-100k", "--data-dir", str(folder)])
    assert result.exit_code == 2
    assert "error:" in result.output and "u.data line 1: expected 4 fields" in result.output
    assert "Traceback" not in result.output


def test_unknown_dataset(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "stats", "ml-10k"])
    assert result.exit_code == 2 and "Unknown dataset 'ml-10k'" in result.output


def test_quickstart_tiny(tmp_path: Path) -> None:
    png = tmp_path / "q.png"
    args = ["quickstart", "--output-dir", str(tmp_path / "run"), "--plot", str(png)]
    for override in (
        "dataset.params.n_users=60",
        "dataset.params.n_items=40",
        "train.epochs=2",
        "model.dim=16",
    ):
        args += ["--set", override]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "synthetic" in result.output and "quickstart done" in result.output
    assert "HSTU leave-one-out split: {'protocol': 'hstu', 'train_users': 60" in result.output
    assert png.exists()
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["epochs_run"] == 2 and set(results["test"]) >= {"hr@10", "ndcg@10", "hr@200"}
    assert (tmp_path / "run" / "report.html").exists() and (
        tmp_path / "run" / "best" / "model.safetensors"
    ).exists()
    # the per-example ranks behind the metrics: their means are results.json's figures
    ranks = load_ranks(tmp_path / "run")
    assert sorted(ranks.splits) == ["test", "valid"] and len(ranks.get("test")) == 60
    assert compute_metrics(ranks.get("test").ranks, list(results["test"])) == pytest.approx(
        results["test"]
    )

    # `shortlist eval` re-evaluates the saved best model with the code training uses
    # (experiment.evaluate_best): the same test metrics, the other masking rule, the ranks again
    (tmp_path / "run" / "report.html").unlink()
    (tmp_path / "run" / "ranks.npz").unlink()
    owned = ("valid", "test", "test_unmasked", "test_exclude_history", "test_by_history_length")
    kept = {k: v for k, v in results.items() if k not in owned}
    (tmp_path / "run" / "results.json").write_text(json.dumps(kept))
    again = runner.invoke(app, ["eval", str(tmp_path / "run"), "--device", "cpu"])
    assert again.exit_code == 0, again.output
    reevaluated = json.loads((tmp_path / "run" / "results.json").read_text())
    assert reevaluated["test"] == pytest.approx(results["test"])
    assert reevaluated["test_unmasked"] == pytest.approx(results["test_unmasked"])
    assert reevaluated["test_exclude_history"] is True and reevaluated["epochs_run"] == 2
    assert (tmp_path / "run" / "report.html").exists()
    assert np.array_equal(load_ranks(tmp_path / "run").get("test").ranks, ranks.get("test").ranks)
    bad = runner.invoke(app, ["eval", str(tmp_path)])
    assert bad.exit_code == 2 and "not a run folder" in bad.output

    # `shortlist compare`: a run against itself (glob pattern) is level, with a zero-width interval
    same = runner.invoke(
        app, ["compare", str(tmp_path / "ru*"), "--baseline", str(tmp_path / "run")]
    )
    assert same.exit_code == 0, same.output
    assert "A/B 1.000" in same.output and "A-B +0.0000" in same.output
    missing = runner.invoke(app, ["compare", str(tmp_path / "run"), "-b", str(tmp_path / "x*")])
    assert missing.exit_code == 2 and "no run folder matches" in missing.output
    no_ranks = runner.invoke(app, ["compare", str(tmp_path / "run"), "-b", str(tmp_path)])
    assert no_ranks.exit_code == 2 and "shortlist eval" in no_ranks.output


def test_parse_overrides_types() -> None:
    assert parse_overrides(["n_users=100", "alpha=0.5", "name=x", "flag=true"]) == {
        "n_users": 100,
        "alpha": 0.5,
        "name": "x",
        "flag": True,
    }


def test_generate_streams_parquet(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    result = runner.invoke(
        app, ["data", "generate", str(out), "--events", "3000", "--set", "n_items=300"]
    )
    assert result.exit_code == 0, result.output
    import polars as pl

    events = pl.read_parquet(out / "interactions.parquet")
    assert 1500 < events.height < 6000
    assert {"user_id", "item_id", "timestamp", "watch_time", "label"} <= set(events.columns)


def test_pairs_command(tmp_path: Path) -> None:
    from shortlist.data.pairs import Pairs

    folder = write_ml100k(tmp_path / "ml-100k", ML100K_RATINGS)
    out = tmp_path / "pairs.parquet"
    result = runner.invoke(
        app,
        ["data", "pairs", "ml-100k", "--data-dir", str(folder), "--out", str(out), "--kind", "u2i"],
    )
    assert result.exit_code == 0, result.output
    pairs = Pairs.load(out)
    assert len(pairs.trigger) > 0 and (pairs.trigger != pairs.target).all()


def test_parse_overrides_rejects_a_pair_without_value() -> None:
    import typer

    with pytest.raises(typer.BadParameter, match="KEY=VALUE"):
        parse_overrides(["train.lr"])
