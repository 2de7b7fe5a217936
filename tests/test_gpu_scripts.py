"""benchmarks/gpu/final_rows.sh (and train_compile.sh) without a GPU: a stand-in ``python3`` on PATH
records each call, so the tests check which jobs the script starts, with which arguments and in
which order (the speed table must run alone on the GPU: before the quality runs, or after them with
SPEED_LAST=1)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = (
    "final_rows.sh", "lib.sh", "longseq_speed.sh", "train_compile.sh", "round11c.sh", "round12.sh",
    "round13.sh",
)  # fmt: skip

pytestmark = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("bash", "setsid", "tar")),
    reason="final_rows.sh needs bash, setsid and tar",
)


def _run(
    tmp_path: Path, script: str = "final_rows.sh", **env: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run ``script`` in a copy of its folder with a recording python3; returns the process and
    the recorded calls, one line each ("python3 ARGS...")."""
    repo = tmp_path / "repo"
    (repo / "benchmarks" / "gpu").mkdir(parents=True)
    for name in SCRIPTS:
        shutil.copy(ROOT / "benchmarks" / "gpu" / name, repo / "benchmarks" / "gpu" / name)
    for name in ("ksa-a", "elastic-b"):  # ml100ksweep lists the round's configs
        folder = repo / "configs" / "ml-100k" / "sweep-round3"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.yaml").write_text("name: x\n")
    bin_dir, calls, out = tmp_path / "bin", tmp_path / "calls.log", tmp_path / "out"
    bin_dir.mkdir()
    out.mkdir()
    stub = bin_dir / "python3"
    stub.write_text(f'#!/usr/bin/env bash\necho "python3 $*" >> {calls}\n')
    stub.chmod(0o755)
    run_env = {
        **os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "OUT": str(out),
        "POLL_S": "0.2", "FIRST_WAIT_S": "20", **env,
    }  # fmt: skip
    proc = subprocess.run(
        ["bash", str(repo / "benchmarks" / "gpu" / script)],
        env=run_env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    lines = calls.read_text().splitlines() if calls.exists() else []
    return proc, lines


def _index(lines: list[str], needle: str) -> int:
    (found,) = [i for i, line in enumerate(lines) if needle in line]
    return found


def test_speed_table_runs_first_by_default(tmp_path: Path) -> None:
    proc, lines = _run(tmp_path, PARTS="speed ml100k")
    assert proc.returncode == 0, proc.stderr
    speed, quality = _index(lines, "longseq_speed.py"), _index(lines, "--name longseq_ml100k ")
    assert speed < quality
    assert "--inductor max_autotune=True" in lines[speed]
    assert "--elastic-chunk 64" in lines[speed]


def test_speed_last_runs_the_table_after_the_sweeps(tmp_path: Path) -> None:
    proc, lines = _run(
        tmp_path, PARTS="speed ml100ksweep mlssweep", SPEED_LAST="1", ML_ROUND="round3",
        ML_PAR="7", MLS_MODELS="m1,m2", MODES="step-graph",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    sweep = lines[_index(lines, "--name sweep_ml100k_round3 ")]
    assert "--config-dir configs/ml-100k/sweep-round3 --models elastic-b,ksa-a" in sweep
    assert "--parallel 7" in sweep and "--out-dir runs/final/ml100k_round3" in sweep
    assert "--seeds 0,1,2,3,4 " in sweep  # ML_SEEDS' default
    select = _index(lines, "select_configs.py --sweep benchmarks/results/sweep_ml100k_round3.json")
    mls = lines[_index(lines, "--name sweep_mls_round5 ")]
    assert "--models m1,m2" in mls and "--out-dir runs/final/mls" in mls
    speed = _index(lines, "longseq_speed.py")
    assert "--compile step-graph" in lines[speed]
    assert speed > max(select, _index(lines, "--name sweep_mls_round5 "))
    assert (tmp_path / "out" / "all.tgz").exists()


def test_ml100k_with_its_sweep_is_refused(tmp_path: Path) -> None:
    proc, lines = _run(tmp_path, PARTS="ml100k ml100ksweep")
    assert proc.returncode == 2
    assert "both write longseq_ml100k" in proc.stderr
    assert not any("seqrec.py" in line for line in lines)


def test_train_compile_runs_both_datasets_with_the_case_limit(tmp_path: Path) -> None:
    proc, lines = _run(tmp_path, "train_compile.sh", CASE_S="77", MLS_MODES="off,default")
    assert proc.returncode == 0, proc.stderr
    mls = lines[_index(lines, "--name train_compile_mls ")]
    ml100k = lines[_index(lines, "--name train_compile_ml100k ")]
    assert "--split .gpu/ml-latest-small.npz --dataset ml-latest-small" in mls
    assert "--models ksa,elastic --modes off,default --timeout 77" in mls
    assert "--models sasrec,elastic --modes off,default,reduce-overhead --timeout 77" in ml100k
    assert _index(lines, "pip install") < _index(lines, "train_compile_mls ") < lines.index(ml100k)
    assert (tmp_path / "out" / "train_compile_mls.log").exists()  # the log reaches $OUT


def test_ml100k_part_takes_its_seeds(tmp_path: Path) -> None:
    proc, lines = _run(tmp_path, PARTS="ml100k", ML_SEEDS="0,1,2,3,4,5,6,7,8,9")
    assert proc.returncode == 0, proc.stderr
    run = lines[_index(lines, "--name longseq_ml100k ")]
    assert "--seeds 0,1,2,3,4,5,6,7,8,9 --parallel 15" in run
    proc, lines = _run(tmp_path / "default", PARTS="ml100k")
    assert "--seeds 0,1,2,3,4 " in lines[_index(lines, "--name longseq_ml100k ")]


def test_ml100k_sweep_takes_its_seeds(tmp_path: Path) -> None:
    proc, lines = _run(tmp_path, PARTS="ml100ksweep", ML_ROUND="round3", ML_SEEDS="0,1,2,3,4,5")
    assert proc.returncode == 0, proc.stderr
    assert "--seeds 0,1,2,3,4,5 " in lines[_index(lines, "--name sweep_ml100k_round3 ")]


def test_round_preamble_launches_detached_and_the_wait_collects(tmp_path: Path) -> None:
    """round11c.sh through lib.sh's round_preamble and copy_synthetic_full: the detached run gets
    its settings, writes its done file, and the call hands back one tarball; a later `--wait` call
    finds the done file and hands it back again without launching anything."""
    proc, lines = _run(tmp_path, "round11c.sh", SYN_S="5", SYN_SEEDS="0")
    assert proc.returncode == 0, proc.stderr
    run = lines[_index(lines, "--name sweep_synthetic_full_f ")]
    assert "--models elastic-long-m0-e64,elastic-long-m0-e128" in run
    assert "--seeds 0 " in run and "train.time_limit_s=5" in run
    repo, out = tmp_path / "repo", tmp_path / "out"
    assert (repo / "runs" / "round11c.done").exists() and (out / "all.tgz").exists()
    (out / "all.tgz").unlink()
    proc = subprocess.run(
        ["bash", str(repo / "benchmarks" / "gpu" / "round11c.sh"), "--wait", "5"],
        env={**os.environ, "OUT": str(out)}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "runs/round11c.done" in proc.stdout and (out / "all.tgz").exists()
    assert len((tmp_path / "calls.log").read_text().splitlines()) == len(lines)  # nothing new


def test_round12_parts_follow_their_settings(tmp_path: Path) -> None:
    """round12.sh's first call runs the routing tests, the planted split's SYN_MODELS and MovieLens
    latest-small round 11; a later call with PYTEST=0, MLS_MODELS="" and SYN_MODELS_B runs the two
    synthetic sweeps alone, each under its own name."""
    proc, lines = _run(tmp_path, "round12.sh", SYN_S="5")
    assert proc.returncode == 0, proc.stderr
    assert "-m pytest" in lines[_index(lines, "tests/test_dispatcher_triton.py")]
    syn = lines[_index(lines, "--name sweep_synthetic_route ")]
    assert "--models elastic-long-m0-top1,elastic-long-m0-e64-top1,elastic-long-m0-e64-top2" in syn
    assert "train.time_limit_s=5" in syn
    mls = lines[_index(lines, "--name sweep_mls_round11 ")]
    assert "--seeds 0,1,2,3,4 " in mls and "-top1,elastic-m0-d2048-sw200-top2 " in mls
    assert (tmp_path / "out" / "all.tgz").exists()
    second = tmp_path / "second"
    second.mkdir()
    proc, lines = _run(
        second, "round12.sh", PYTEST="0", MLS_MODELS="", SYN_NAME="sweep_synthetic_route_b",
        SYN_MODELS="a", SYN_MODELS_B="b",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert not [line for line in lines if "pytest" in line or "sweep_mls_round11" in line]
    assert "--models a " in lines[_index(lines, "--name sweep_synthetic_route_b ")]
    assert "--models b " in lines[_index(lines, "--name sweep_synthetic_route_c ")]


def test_round13_reruns_the_recorded_speed_command_then_profiles(tmp_path: Path) -> None:
    """round13.sh: the wheels, the routing tests, then longseq_speed_route.json's own recorded
    command (the same arguments), then one profile of each ELASTIC sublayer, in that order."""
    proc, lines = _run(tmp_path, "round13.sh")
    assert proc.returncode == 0, proc.stderr
    assert "-m pip install" in lines[0] and "-m pytest" in lines[1]
    recorded = json.loads((ROOT / "benchmarks/results/longseq_speed_route.json").read_text())
    speed = lines[_index(lines, "benchmarks/longseq_speed.py")]
    assert speed.split()[1:] == recorded["command"].split()[1:]  # python3 there, python here
    profiles = [line for line in lines if "longseq_profile.py" in line]
    assert [p.split("--method ")[1] for p in profiles] == ["elastic", "elastic-route"]
    assert lines.index(speed) < lines.index(profiles[0])
