"""benchmarks/common.py writes results in the project schema and renders BENCHMARKS.md from them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import common


def test_write_and_render(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "RESULTS", tmp_path / "results")
    out = tmp_path / "BENCHMARKS.md"
    monkeypatch.setattr(common, "BENCHMARKS_MD", out)
    rows = [
        common.Row(
            dataset="ml-1m",
            model="loader",
            variant="parse",
            metrics={"prepare_s": 2.5, "peak_mib": 812.25},
        ),
        common.Row(
            dataset="synthetic",
            model="batches",
            metrics={"events_per_s": 1_234_567.0, "speedup_ratio": 3.14159},
        ),
    ]
    path = common.write_result("demo", rows, command="python benchmarks/demo.py")
    result = json.loads(path.read_text())
    assert set(result) >= {"name", "command", "commit", "date", "machine", "rows"}
    assert result["name"] == "demo" and result["command"] == "python benchmarks/demo.py"
    assert result["rows"][0] == {
        "dataset": "ml-1m",
        "protocol": "",
        "model": "loader",
        "variant": "parse",
        "metrics": {"prepare_s": 2.5, "peak_mib": 812.25},
    }
    text = out.read_text()
    assert "## demo" in text and "`python benchmarks/demo.py`" in text
    assert (
        "| dataset | model | variant | prepare_s | peak_mib | events_per_s | speedup_ratio |"
        in text
    )
    assert "| ml-1m | loader | parse | 2.50 s | 812.25 MiB |  |  |" in text
    assert "| synthetic | batches |  |  |  | 1,234,567/s | 3.14x |" in text
    assert not list((tmp_path / "results").glob(".*")), "no temporary files left"


def test_ratios_render_as_multiples_only_when_they_compare() -> None:
    assert common._fmt("speedup_vs_sdpa_ratio", 2.345) == "2.35x"
    assert common._fmt("memory_vs_naive_ratio", 0.0618) == "0.0618x"
    assert common._fmt("collision_ratio", 0.041071) == "0.0411"  # a share of the items
    assert common._fmt("utilisation_l1_ratio", 1.0) == "1.0000"


def test_seed_jobs_and_overrides() -> None:
    jobs = common.seed_jobs(
        "bench.py",
        ["sasrec", "hstu"],
        [0, 1],
        dataset="ml-100k",
        config_dir=Path("configs/ml-100k"),
        out_dir=Path("runs/x"),
        data_args=["--split", "s.npz"],
        extra=common.overrides_args(["train.lr=0.01"]),
    )
    assert list(jobs) == ["sasrec-s0", "sasrec-s1", "hstu-s0", "hstu-s1"]
    assert jobs["hstu-s1"][1:] == [
        "bench.py", "job", "--config", "configs/ml-100k/hstu.yaml", "--split", "s.npz",
        "--seed", "1", "--run-dir", "runs/x/ml-100k-hstu-s1", "--set", "train.lr=0.01",
    ]  # fmt: skip
