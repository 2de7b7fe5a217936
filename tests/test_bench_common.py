"""benchmarks/common.py writes results in the project schema and renders BENCHMARKS.md from them."""

from __future__ import annotations

import argparse
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


def _run_args(out_dir: Path, **kw: object) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    common.add_seed_run_args(parser, models="a,b", seeds="0,1", out_dir=str(out_dir), baseline="x")
    args = parser.parse_args(["--name", "n", "--dataset", "d"])
    vars(args).update(kw)
    return args


def test_run_seed_jobs_collect_reads_finished_runs_and_lists_the_rest(tmp_path: Path) -> None:
    for name, auc in (("d-a-s0", 0.7), ("d-b-s1", 0.8)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps({"auc": auc}))
    runs = common.run_seed_jobs(
        "script.py", _run_args(tmp_path, collect=True), data_args=[], extra=[]
    )
    assert runs.results == {"a": [(0, {"auc": 0.7})], "b": [(1, {"auc": 0.8})]}
    assert runs.missing == ["a-s1", "b-s0"]
    assert runs.notes("N.") == "N. Runs without results (not run, or not finished): a-s1, b-s0."
    assert runs.config_dir == common.ROOT / "configs" / "d"
    cut = {"best_epoch": 7, "epochs_run": 9, "stopped_by": "time_limit"}
    (tmp_path / "d-a-s1").mkdir()
    (tmp_path / "d-a-s1" / "results.json").write_text(json.dumps(cut))
    runs = common.run_seed_jobs(
        "script.py", _run_args(tmp_path, collect=True), data_args=[], extra=[]
    )
    assert runs.notes("N.") == (
        "N. Runs without results (not run, or not finished): b-s0. Stopped by their time limit "
        "(train.time_limit_s), not by patience: a-s1 (best epoch 7 of 9)."
    )


def test_run_seed_jobs_stops_on_a_failed_job(tmp_path: Path) -> None:
    args = _run_args(
        tmp_path, parallel=2
    )  # the jobs run `python script.py job ...`: no such script
    with pytest.raises(SystemExit, match=r"runs failed: \['a-s0', 'a-s1', 'b-s0', 'b-s1'\]"):
        common.run_seed_jobs(str(tmp_path / "missing.py"), args, data_args=[], extra=[])


def test_glob_paths_sorted_and_unique(tmp_path: Path) -> None:
    for name in ("b.json", "a.json"):
        (tmp_path / name).write_text("{}")
    pattern = str(tmp_path / "*.json")
    assert common.glob_paths([pattern, pattern, str(tmp_path / "none*")]) == [
        tmp_path / "a.json",
        tmp_path / "b.json",
    ]


def test_git_commit_is_dirty_only_outside_the_benchmark_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess

    monkeypatch.delenv("SHORTLIST_COMMIT", raising=False)

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.email=t@t", "-c", "user.name=t", *args],
            cwd=tmp_path, check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip

    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    for name in ("code.py", "BENCHMARKS.md", "benchmarks/results/x.json"):
        (tmp_path / name).write_text("a")
    git("init", "-q")
    git("add", "-A")
    git("commit", "-q", "-m", "c")
    sha = git("rev-parse", "HEAD")
    assert common.git_commit(tmp_path) == sha
    (tmp_path / "benchmarks/results/x.json").write_text("b")  # a result being rewritten
    (tmp_path / "BENCHMARKS.md").write_text("b")
    assert common.git_commit(tmp_path) == sha
    (tmp_path / "code.py").write_text("b")  # the measured code changed
    assert common.git_commit(tmp_path) == f"{sha}-dirty"


def test_write_result_also_writes_the_copy_folder_when_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$SHORTLIST_RESULTS_COPY gets the same file (a GPU job's copy that survives the next
    call's tree copy); unset, nothing is written there."""
    monkeypatch.setattr(common, "RESULTS", tmp_path / "results")
    monkeypatch.delenv("SHORTLIST_RESULTS_COPY", raising=False)
    rows = [common.Row(dataset="d", model="m", metrics={"x_s": 1.0})]
    common.write_result("a", rows, command="c", rebuild=False)
    assert not (tmp_path / "copy").exists()
    monkeypatch.setenv("SHORTLIST_RESULTS_COPY", str(tmp_path / "copy"))
    path = common.write_result("b", rows, command="c", rebuild=False)
    assert (tmp_path / "copy" / "b.json").read_text() == path.read_text()


def test_epoch_records_keeps_the_epoch_lines_in_order(tmp_path: Path) -> None:
    lines = [
        {"type": "train", "epoch": 1, "loss": 9.0},
        {"type": "epoch", "epoch": 1, "loss": 2.5},
        {"type": "epoch", "epoch": 2, "loss": 2.0, "valid": {"ndcg@10": 0.2}},
    ]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    assert common.epoch_records(tmp_path) == lines[1:]


def test_epoch_records_names_a_missing_log(tmp_path: Path) -> None:
    with pytest.raises(
        FileNotFoundError, match=r"metrics\.jsonl: the run folder has no training log"
    ):
        common.epoch_records(tmp_path)
