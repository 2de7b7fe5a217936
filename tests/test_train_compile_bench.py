"""benchmarks/train_compile.py: the speed summary of a run's log, the job command of a case, and
the rows of a whole sweep (failed and timed-out cases included), without running training."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import train_compile
from common import Row


def _epoch(train_s: float, seqs: float, positions: float) -> dict:
    return {
        "type": "epoch",
        "train_s": train_s,
        "sequences_per_s": seqs,
        "positions_per_s": positions,
    }


def test_epoch_summary_times_the_epochs_after_the_first() -> None:
    records = [
        {"type": "train", "loss": 3.0},
        _epoch(50.0, 10.0, 100.0),  # compiling
        _epoch(2.0, 300.0, 3000.0),
        {"type": "valid", "ndcg@10": 0.1},
        _epoch(2.0, 100.0, 1000.0),
        _epoch(2.0, 200.0, 5000.0),
    ]
    summary = train_compile.epoch_summary(records)
    assert summary == {
        "first_epoch_s": 50.0,
        "sequences_per_s": 200.0,  # the median of 300, 100, 200
        "positions_per_s": 3000.0,
        "timed_epochs": 3.0,
    }
    with pytest.raises(
        ValueError, match=r"at least 2 epoch records .* got 1\. Run with --epochs >= 2"
    ):
        train_compile.epoch_summary(records[:2])


def test_job_command_sets_compile_only_for_a_mode() -> None:
    config = Path("configs/ml-100k/ksa.yaml")
    off = train_compile.job_command(config, "s.npz", Path("r"), "off", epochs=3, steps=7)
    on = train_compile.job_command(config, "s.npz", Path("r"), "max-autotune", epochs=3, steps=7)
    sets = lambda cmd: [cmd[i + 1] for i, a in enumerate(cmd) if a == "--set"]  # noqa: E731
    assert "train.compile=false" in sets(off) and not any("compile_mode" in s for s in sets(off))
    assert {"train.compile=true", "train.compile_mode=max-autotune"} <= set(sets(on))
    assert {"train.epochs=3", "train.max_steps_per_epoch=7", "train.eval_every=3"} <= set(sets(on))
    assert on[on.index("--run-dir") + 1] == "r" and on[on.index("--split") + 1] == "s.npz"
    with pytest.raises(ValueError, match="'fast' is not one of"):
        train_compile.job_command(config, "s.npz", Path("r"), "fast", epochs=3, steps=7)


def test_ratios_are_over_the_off_row_of_the_same_model() -> None:
    rows = [
        Row(
            "d", "training", "ksa", "compile off", {"sequences_per_s": 100.0, "first_epoch_s": 4.0}
        ),
        Row(
            "d",
            "training",
            "ksa",
            "compile default",
            {"sequences_per_s": 150.0, "first_epoch_s": 40.0},
        ),
        Row(
            "d",
            "training",
            "elastic",
            "compile default",
            {"sequences_per_s": 9.0, "first_epoch_s": 1.0},
        ),
        Row("d", "training", "ksa", "compile max-autotune", {"failed": "over the 5 s timeout"}),
    ]
    out = train_compile.with_ratios(rows)
    assert out[1].metrics["speedup_vs_off"] == 1.5 and out[1].metrics["first_epoch_vs_off"] == 10.0
    assert "speedup_vs_off" not in out[2].metrics  # no off row of its own
    assert out[3].metrics == {"failed": "over the 5 s timeout"}


def test_last_error_names_the_exception_line(tmp_path: Path) -> None:
    log = tmp_path / "stderr.log"
    log.write_text(
        "Traceback (most recent call last):\n  File x\nInductorError: AssertionError: A\n\nhint\n"
    )
    assert train_compile.last_error(log) == "InductorError: AssertionError: A"
    log.write_text("only a line\n")
    assert train_compile.last_error(log) == "only a line"


def test_run_case_returns_the_exit_code_and_keeps_stderr(tmp_path: Path) -> None:
    log = tmp_path / "err.log"
    cmd = [sys.executable, "-c", "import sys; sys.stderr.write('ValueError: bad\\n'); sys.exit(3)"]
    assert train_compile.run_case(cmd, log, timeout=30) == 3
    assert train_compile.last_error(log) == "ValueError: bad"


def test_run_case_kills_the_whole_session_on_timeout(tmp_path: Path) -> None:
    """A case that starts workers of its own (as Inductor does) leaves none behind."""
    pid_file = tmp_path / "child.pid"
    script = (
        "import subprocess, sys, time; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(60)"
    )
    start = time.monotonic()
    assert train_compile.run_case([sys.executable, "-c", script], tmp_path / "e.log", 3) is None
    assert time.monotonic() - start < 30
    child = int(pid_file.read_text())
    for _ in range(50):  # the orphan is reaped by init shortly after the kill
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the case's child process {child} outlived the timeout")


def test_main_writes_a_row_per_case_with_failures_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[tuple[str, list[Row]]] = []
    monkeypatch.setattr(
        train_compile, "write_result", lambda name, rows, **kw: written.append((name, list(rows)))
    )

    def fake_case(cmd: list[str], stderr_path: Path, timeout: float) -> int | None:
        run_dir = Path(cmd[cmd.index("--run-dir") + 1])
        mode = "off" if "train.compile=false" in cmd else cmd[-1].split("=")[1]
        if mode == "max-autotune":
            return None  # over the timeout
        if mode == "reduce-overhead":
            stderr_path.write_text("boom\nRuntimeError: no graph\n")
            return 1
        speed = 100.0 if mode == "off" else 130.0
        lines = [
            _epoch(9.0, 1.0, 1.0),
            _epoch(1.0, speed, 10 * speed),
            _epoch(1.0, speed, 10 * speed),
        ]
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
        return 0

    monkeypatch.setattr(train_compile, "run_case", fake_case)
    argv = ["train_compile.py", "--split", "s.npz", "--dataset", "ml-100k", "--models", "sasrec"]
    argv += ["--modes", "off,default,reduce-overhead,max-autotune", "--out-dir", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    train_compile.main()
    name, rows = written[-1]
    assert name == "train_compile" and len(written) == 4  # rewritten after every case
    by_variant = {r.variant: r.metrics for r in rows}
    assert by_variant["compile default"]["speedup_vs_off"] == pytest.approx(1.3)
    assert by_variant["compile reduce-overhead"] == {"failed": "exit 1: RuntimeError: no graph"}
    assert by_variant["compile max-autotune"] == {"failed": "over the 240 s timeout"}
