"""Does a training run repeat exactly from its seed? The same config trained ``--repeats`` times
with ``train.deterministic`` off and on (``shortlist.train.trainer.TrainConfig.deterministic``:
``torch.use_deterministic_algorithms`` and a fixed cuBLAS workspace for the run).

Each run is a separate process (``benchmarks/seqrec.py job``) on a saved split, so nothing is shared
but the seed. Per mode, from each run's ``metrics.jsonl`` and ``results.json``:

- ``identical_runs_ratio``: the share of repeats after the first whose every epoch's training loss
  and validation metrics, and whose test metrics, equal the first run's exactly (1.0: the runs
  repeat bit for bit);
- ``max_loss_diff`` and ``max_test_ndcg@10_diff``: the largest difference from the first run;
- ``epoch_s``: the median training time of an epoch after the first (the first includes warm-up),
  so that the deterministic kernels' cost reads as the ratio ``epoch_vs_off_ratio`` within the run.

A mode whose run fails (PyTorch raises for an operation without a deterministic kernel) is recorded
with the error's last line.

    python benchmarks/determinism.py --config configs/ml-100k/elastic.yaml --split .gpu/ml-100k.npz \\
        --epochs 3 --repeats 2 --device cuda --name determinism_ml100k_elastic
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Row, epoch_records, overrides_args, write_result

log = logging.getLogger("benchmarks.determinism")
MODES = {"off": "false", "on": "true"}


def read_run(run_dir: Path) -> dict[str, Any]:
    """A finished run's per-epoch losses and validation metrics, test metrics and epoch times."""
    epochs = epoch_records(run_dir)
    results = json.loads((run_dir / "results.json").read_text())
    return {
        "loss": [e["loss"] for e in epochs],
        "valid": [e.get("valid", {}) for e in epochs],
        "test": results["test"],
        "epoch_s": [e["train_s"] for e in epochs],
    }


def compare_runs(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Metrics of one mode's repeats against its first run (see the module docstring)."""
    first, rest = runs[0], runs[1:]
    if not rest:
        raise ValueError("compare_runs needs at least two runs of a mode (--repeats >= 2).")
    same = [r["loss"] == first["loss"] and r["valid"] == first["valid"] and r["test"] == first["test"]
            for r in rest]  # fmt: skip
    loss_diff = max(abs(a - b) for r in rest for a, b in zip(r["loss"], first["loss"], strict=True))
    test_diff = max(abs(r["test"]["ndcg@10"] - first["test"]["ndcg@10"]) for r in rest)
    later = [s for r in runs for s in r["epoch_s"][1:]] or [s for r in runs for s in r["epoch_s"]]
    return {
        "identical_runs_ratio": sum(same) / len(same),
        "max_loss_diff": loss_diff,
        "max_test_ndcg@10_diff": test_diff,
        "epoch_s": statistics.median(later),
        "repeats": float(len(runs)),
    }


def run_job(args: argparse.Namespace, mode: str, repeat: int, root: Path) -> Path:
    run_dir = root / f"{mode}-{repeat}"
    cmd = [
        sys.executable, str(ROOT / "benchmarks" / "seqrec.py"), "job",
        "--config", args.config, "--split", args.split, "--seed", str(args.seed),
        "--run-dir", str(run_dir),
        *overrides_args([f"train.deterministic={MODES[mode]}", f"train.epochs={args.epochs}",
                         "train.num_workers=0", f"train.device={args.device}"]),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(tail)
    return run_dir


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--config", required=True, help="a frozen config, e.g. configs/ml-100k/elastic.yaml"
    )
    p.add_argument("--split", required=True, help="a split saved by seqrec.py prepare (.npz)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--modes", default="off,on", help="comma-separated subset of off,on")
    p.add_argument("--name", default="determinism")
    p.add_argument("--no-rebuild", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.repeats < 2:
        p.error("--repeats must be at least 2: a run is compared with its repeats.")
    modes = [m for m in args.modes.split(",") if m]
    if not modes or set(modes) - set(MODES):
        p.error(f"--modes: choose among {sorted(MODES)}, got {args.modes!r}.")
    rows: list[Row] = []
    per_mode: dict[str, dict[str, float]] = {}
    failures: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="determinism-") as tmp:
        for mode in modes:
            try:
                runs = [read_run(run_job(args, mode, i, Path(tmp))) for i in range(args.repeats)]
            except RuntimeError as err:
                log.warning("deterministic=%s: a run failed: %s", mode, err)
                failures[mode] = str(err)
                continue
            per_mode[mode] = compare_runs(runs)
            log.info("deterministic=%s: %s", mode, per_mode[mode])
    if "off" in per_mode and "on" in per_mode:
        per_mode["on"]["epoch_vs_off_ratio"] = (
            per_mode["on"]["epoch_s"] / per_mode["off"]["epoch_s"]
        )
    for mode in failures:
        per_mode[mode] = {"failed": 1.0}
    for mode, metrics in per_mode.items():
        rows.append(
            Row(dataset=Path(args.split).stem, protocol="repeat", model=Path(args.config).stem,
                variant=f"deterministic={mode}", metrics=metrics)
        )  # fmt: skip
    write_result(
        args.name,
        rows,
        notes=f"{args.config}, seed {args.seed}, {args.epochs} epochs, {args.repeats} runs a mode as"
        f" separate processes on {args.device}; identical_runs_ratio 1.0 means every epoch's loss"
        " and validation metrics and the test metrics repeat exactly."
        + "".join(f" deterministic={m} failed: {e}" for m, e in failures.items()),
        rebuild=not args.no_rebuild,
    )


if __name__ == "__main__":
    main()
