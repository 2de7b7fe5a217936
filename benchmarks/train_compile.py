"""Training speed with and without ``train.compile``: what ``torch.compile`` buys a whole run.

``longseq_speed.py`` times one attention sublayer step; this times the trainer itself. For each
frozen config of ``--dataset`` and each ``--modes`` entry (``off``, or a ``train.compile_mode``:
``default``, ``reduce-overhead``, ``max-autotune``, ``max-autotune-no-cudagraphs``), one training
run of ``--epochs`` epochs of ``--steps`` batches (``benchmarks/seqrec.py job``, one process a case,
one case at a time, each under ``--timeout``), validated once at the end. From the run's
``metrics.jsonl``: the first epoch's seconds (compilation included), the later epochs' median
sequences and non-padding positions a second (batches are trimmed to their longest row, or with
``train.compile`` to one of the trainer's ``compile_width`` widths, so compiled code meets several
shapes), and the ratio of both to the ``off`` case of the same
config. The result file is rewritten after each case, so a cut run keeps what it finished.

    python benchmarks/train_compile.py --split .gpu/ml-latest-small.npz --dataset ml-latest-small \
        --models ksa,elastic --modes off,default,max-autotune

The splits are made by ``benchmarks/seqrec.py prepare`` (they are not committed). Meant for the GPU:
on the CPU ``torch.compile`` is rarely worth its compile time, and the trainer's bf16 autocast is on
only with CUDA.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Row, epoch_records, write_result
from shortlist.train.trainer import COMPILE_MODES

log = logging.getLogger("benchmarks.train_compile")

MODES = ("off", *COMPILE_MODES)  # "off", or a train.compile_mode


def epoch_summary(records: list[dict[str, Any]]) -> dict[str, float]:
    """Speed figures from a run's ``metrics.jsonl`` records (dicts; only ``type == "epoch"`` used).

    ``first_epoch_s``: the first epoch's ``train_s``; ``sequences_per_s`` / ``positions_per_s``: the
    median over the later epochs (ValueError with fewer than 2 epochs: nothing after compilation).
    """
    epochs = [r for r in records if r.get("type") == "epoch"]
    if len(epochs) < 2:
        raise ValueError(
            f"epoch_summary needs at least 2 epoch records (the first holds compilation); got "
            f"{len(epochs)}. Run with --epochs >= 2."
        )
    later = epochs[1:]
    return {
        "first_epoch_s": float(epochs[0]["train_s"]),
        "sequences_per_s": statistics.median(float(r["sequences_per_s"]) for r in later),
        "positions_per_s": statistics.median(float(r["positions_per_s"]) for r in later),
        "timed_epochs": float(len(later)),
    }


def run_case(cmd: list[str], stderr_path: Path, timeout: float) -> int | None:
    """Run one case in a session of its own; its exit code, or None when ``timeout`` passed and
    the whole session was killed (Inductor's compile workers too, which would otherwise go on
    using the CPUs during the next case)."""
    with open(stderr_path, "w") as err:
        proc = subprocess.Popen(cmd, stderr=err, text=True, start_new_session=True)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return None


def last_error(path: Path) -> str:
    """The last line of a failed case's stderr that names an exception (else its last line)."""
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    named = [line for line in lines if "Error" in line.split(":")[0] or "Exception" in line]
    return (named or lines or ["(no stderr)"])[-1][:500]


def job_command(
    config: Path, split: str, run_dir: Path, mode: str, *, epochs: int, steps: int
) -> list[str]:
    """The ``seqrec.py job`` command line of one case (``mode`` "off" leaves compile off)."""
    if mode not in MODES:
        raise ValueError(f"--modes: {mode!r} is not one of {list(MODES)}.")
    sets = [
        f"train.epochs={epochs}",
        f"train.max_steps_per_epoch={steps}",
        f"train.eval_every={epochs}",  # one validation, after the timed epochs
        "train.patience=0",
        "train.time_limit_s=0",
        "train.num_workers=0",
        f"train.compile={'false' if mode == 'off' else 'true'}",
    ]
    if mode != "off":
        sets.append(f"train.compile_mode={mode}")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "seqrec.py"), "job", "--config", str(config)]
    cmd += ["--split", split, "--seed", "0", "--run-dir", str(run_dir)]
    for item in sets:
        cmd += ["--set", item]
    return cmd


def with_ratios(rows: list[Row]) -> list[Row]:
    """Each row's speed over the ``off`` row of the same model (``speedup_vs_off``,
    ``first_epoch_vs_off``), where that row exists."""
    off = {r.model: r.metrics for r in rows if r.variant == "compile off"}
    for r in rows:
        base = off.get(r.model)
        if base is not None and "sequences_per_s" in r.metrics:
            r.metrics["speedup_vs_off"] = r.metrics["sequences_per_s"] / base["sequences_per_s"]
            r.metrics["first_epoch_vs_off"] = r.metrics["first_epoch_s"] / base["first_epoch_s"]
    return rows


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--split", required=True, help="a saved split (.npz)")
    parser.add_argument("--dataset", required=True, help="configs/<dataset>/<model>.yaml are run")
    parser.add_argument("--models", default="ksa,elastic")
    parser.add_argument("--modes", default="off,default,max-autotune")
    parser.add_argument("--epochs", type=int, default=4, help="the first is not timed (compiling)")
    parser.add_argument("--steps", type=int, default=40, help="batches per epoch")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds per case")
    parser.add_argument("--out-dir", default="runs/train_compile")
    parser.add_argument("--name", default="train_compile")
    parser.add_argument("--no-rebuild", action="store_true")
    args = parser.parse_args()
    modes = args.modes.split(",")
    for mode in modes:
        if mode not in MODES:
            parser.error(f"--modes: {mode!r} is not one of {list(MODES)}.")
    rows: list[Row] = []
    for family in args.models.split(","):
        config = ROOT / "configs" / args.dataset / f"{family}.yaml"
        if not config.exists():
            parser.error(f"--models: {config} does not exist.")
        for mode in modes:
            run_dir = Path(args.out_dir) / f"{args.dataset}-{family}-{mode}"
            cmd = job_command(
                config, args.split, run_dir, mode, epochs=args.epochs, steps=args.steps
            )
            log.info("%s, compile %s", family, mode)
            start = time.perf_counter()
            run_dir.mkdir(parents=True, exist_ok=True)
            returncode = run_case(cmd, run_dir / "stderr.log", args.timeout)
            failed, reason = returncode != 0, ""
            if returncode is None:
                reason = f"over the {args.timeout:.0f} s timeout"
            elif failed:
                reason = f"exit {returncode}: {last_error(run_dir / 'stderr.log')}"
            wall = time.perf_counter() - start
            variant = "compile off" if mode == "off" else f"compile {mode}"
            if failed:
                log.warning("%s, compile %s failed: %s", family, mode, reason)
                rows.append(Row(args.dataset, "training", family, variant, {"failed": reason}))
            else:
                metrics = epoch_summary(epoch_records(run_dir))
                metrics["case_wall_s"] = wall
                log.info("%s, compile %s: %s", family, mode, metrics)
                rows.append(Row(args.dataset, "training", family, variant, metrics))
            write_result(
                args.name,
                with_ratios(rows),
                notes=(
                    f"configs/{args.dataset}/<model>.yaml, seed 0, {args.epochs} epochs of "
                    f"{args.steps} batches, one case at a time; first_epoch_s includes compiling; "
                    "sequences_per_s and positions_per_s are the median of the later epochs; "
                    "case_wall_s is the whole process (start-up, data, one validation, test)."
                ),
                rebuild=not args.no_rebuild,
            )


if __name__ == "__main__":
    main()
