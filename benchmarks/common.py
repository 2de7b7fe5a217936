"""Shared helper of every benchmark script: write a result in the project schema, rebuild BENCHMARKS.md.

Schema (../shared/DESIGN.md, Benchmarks)::

    {"name": ..., "command": ..., "commit": ..., "date": ..., "machine": ...,
     "rows": [{"dataset": ..., "protocol": ..., "model": ..., "variant": ..., "metrics": {...}}, ...]}

Metric keys: lower case, ``hr@10``; times ``*_s``, memory ``*_mib``, rates ``*_per_s``, ratios
``*_ratio``. Usage in a script::

    from common import Row, write_result
    write_result("data_prepare", [Row(dataset="ml-1m", model="loader", metrics={"prepare_s": 2.1})])

Run ``python benchmarks/common.py`` to rebuild BENCHMARKS.md from ``benchmarks/results/*.json``.
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from shortlist.atomic import write_json, write_text

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"

_UNITS = (("_per_s", "/s"), ("_mib", "MiB"), ("_s", "s"), ("_ratio", "x"))


@dataclass
class Row:
    """One result row: what was measured, under which protocol, and its metrics."""

    dataset: str = ""
    protocol: str = ""
    model: str = ""
    variant: str = ""
    metrics: dict[str, float] = field(default_factory=dict)


# What the scripts write: changes there do not make the measured code differ from its commit
# (a result file is rewritten while its own run goes on).
OUTPUTS = ("benchmarks/results", "BENCHMARKS.md")


def git_commit(root: Path = ROOT) -> str:
    """The checkout's commit (``-dirty`` with uncommitted changes outside the benchmark outputs), or
    ``$SHORTLIST_COMMIT`` where the tree was copied without its git folder (the GPU machine)."""
    if os.environ.get("SHORTLIST_COMMIT"):
        return os.environ["SHORTLIST_COMMIT"]
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        excluded = [f":(exclude){path}" for path in OUTPUTS]
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *excluded],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """'<GPU> / <n>-core <CPU model>, torch <version>' for the machine running the benchmark, or
    ``$SHORTLIST_MACHINE`` where results made elsewhere (the GPU) are summarised here."""
    if os.environ.get("SHORTLIST_MACHINE"):
        return os.environ["SHORTLIST_MACHINE"]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    parts = [f"{cores}-core {_cpu_model()}"]
    try:
        import torch

        if torch.cuda.is_available():
            parts.insert(0, torch.cuda.get_device_name(0))
        parts.append(f"torch {torch.__version__}")
    except ImportError:
        pass
    parts.append(f"Python {platform.python_version()}")
    return " / ".join(parts[:2]) + (", " + ", ".join(parts[2:]) if len(parts) > 2 else "")


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def keep_rows(path: str | None, rows: list[Row]) -> tuple[list[Row], str]:
    """The rows of an earlier result file ``path`` whose model has no row in ``rows`` (models not
    re-run this time, a baseline whose files are elsewhere), and a note naming them, that file's
    commit and its command; ``([], "")`` without ``path``. A missing file is an error."""
    if not path:
        return [], ""
    file = Path(path)
    if not file.is_file():
        raise SystemExit(f"--keep-rows: {path} does not exist; give an earlier result file")
    old = json.loads(file.read_text())
    here = {r.model for r in rows}
    kept = [Row(**r) for r in old["rows"] if r["model"] not in here]
    models = sorted({r.model for r in kept})
    note = (
        f"Rows of {', '.join(models)} kept from {file.name} as it was at commit {old['commit']} "
        f"(not re-run here); its command: {old['command']}"
        if kept
        else ""
    )
    return kept, note


def write_run_result(args: argparse.Namespace, runs: SeedRuns, rows: list[Row]) -> Path:
    """Write the result of a seed run (``ctr.py run``, ``seqrec.py run``): ``rows``, the rows that
    ``--keep-rows`` carries over from an earlier file, and the notes of both."""
    kept, kept_note = keep_rows(args.keep_rows, rows)
    notes = " ".join(x for x in (runs.notes(args.notes), kept_note) if x)
    return write_result(
        args.name, rows + kept, command=command_line(), notes=notes, rebuild=not args.no_rebuild
    )


def command_line() -> str:
    return " ".join(
        ["python", *[shlex.quote(a) for a in [os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]]]]
    )


def write_result(
    name: str,
    rows: list[Row],
    *,
    command: str | None = None,
    notes: str = "",
    extra: dict[str, Any] | None = None,
    rebuild: bool = True,
) -> Path:
    """Write ``benchmarks/results/<name>.json`` atomically and rebuild BENCHMARKS.md; with
    ``$SHORTLIST_RESULTS_COPY`` set, also a copy in that folder (each rewrite of a partial result
    included), which a GPU call's copy of the working tree does not replace."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {
        "name": name,
        "command": command or command_line(),
        "commit": git_commit(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": machine(),
        "rows": [asdict(r) for r in rows],
    }
    if notes:
        result["notes"] = notes
    if extra:
        result.update(extra)
    path = RESULTS / f"{name}.json"
    write_json(path, result)
    copy_dir = os.environ.get("SHORTLIST_RESULTS_COPY")
    if copy_dir:  # a detached GPU job: the next call's copy of the tree replaces benchmarks/results
        Path(copy_dir).mkdir(parents=True, exist_ok=True)
        write_json(Path(copy_dir) / f"{name}.json", result)
    if rebuild:
        rebuild_benchmarks_md()
    return path


def _fmt(key: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    for suffix, unit in _UNITS:
        if key.endswith(suffix):
            if unit == "/s":
                return f"{value:,.0f}/s" if value >= 100 else f"{value:,.2f}/s"
            if unit == "x":  # a comparison reads as a multiple; a share of a whole as a fraction
                comparison = any(w in key for w in ("speedup", "_vs_", "gain", "cache_ratio"))
                return f"{value:.3g}x" if comparison else f"{value:.4f}"
            if unit == "s" and 0 < value < 0.01:
                return f"{value * 1000:.2f} ms"
            return f"{value:,.2f} {unit}" if value < 1000 else f"{value:,.0f} {unit}"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4f}" if abs(value) < 10 else f"{value:,.2f}"


def render(result: dict[str, Any]) -> str:
    """One result as a Markdown section: provenance, then a table of its rows."""
    lines = [f"## {result['name']}", ""]
    lines.append(f"- command: `{result['command']}`")
    lines.append(f"- commit `{result['commit'][:12]}`, {result['date']}, {result['machine']}")
    if result.get("notes"):
        lines.append(f"- {result['notes']}")
    lines.append("")
    rows = result.get("rows", [])
    keys = [k for k in ("dataset", "protocol", "model", "variant") if any(r.get(k) for r in rows)]
    metrics: list[str] = []
    for r in rows:
        metrics += [m for m in r.get("metrics", {}) if m not in metrics]
    header = keys + metrics
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for r in rows:
        cells = [str(r.get(k, "")) for k in keys]
        cells += [_fmt(m, r["metrics"][m]) if m in r.get("metrics", {}) else "" for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


def rebuild_benchmarks_md(results_dir: Path | None = None, out: Path | None = None) -> Path:
    """Regenerate BENCHMARKS.md from every ``results_dir/*.json`` (sorted by name)."""
    results_dir = results_dir or RESULTS
    out = out or BENCHMARKS_MD
    parts = [
        "# Benchmarks",
        "",
        "Generated by `python benchmarks/common.py` from `benchmarks/results/*.json`; do not edit by hand.",
        "Each section names the script and command that produced it, the commit, the date and the machine.",
        "",
    ]
    for path in sorted(Path(results_dir).glob("*.json")):
        parts.append(render(json.loads(path.read_text())))
    text = "\n".join(parts).rstrip() + "\n"
    return write_text(out, text)


def run_parallel(jobs: dict[str, list[str]], *, parallel: int, logs: Path) -> list[str]:
    """Run each command of ``jobs`` (name -> argv) as a process, ``parallel`` at a time, stdout and
    stderr to ``logs/<name>.log``; returns the names of the jobs that exited non-zero."""
    log = logging.getLogger("benchmarks")
    logs.mkdir(parents=True, exist_ok=True)
    pending = list(jobs.items())
    running: list[tuple[subprocess.Popen[bytes], str, Any, float]] = []
    failed: list[str] = []
    while pending or running:
        while pending and len(running) < parallel:
            name, cmd = pending.pop(0)
            fh = (logs / f"{name}.log").open("wb")
            proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
            running.append((proc, name, fh, time.perf_counter()))
            log.info("started %s", name)
        time.sleep(1)
        for entry in list(running):
            proc, name, fh, started = entry
            if proc.poll() is not None:
                fh.close()
                running.remove(entry)
                took = time.perf_counter() - started
                log.info("%s finished (exit %d) in %.0fs", name, proc.returncode, took)
                if proc.returncode != 0:
                    failed.append(name)
    return failed


def seed_jobs(
    script: str,
    models: list[str],
    seeds: list[int],
    *,
    dataset: str,
    config_dir: Path,
    out_dir: Path,
    data_args: list[str],
    extra: list[str],
) -> dict[str, list[str]]:
    """One ``<script> job`` command per model x seed (name ``<model>-s<seed>`` -> argv), each with
    its config ``<config_dir>/<model>.yaml`` and run folder ``<out_dir>/<dataset>-<model>-s<seed>``;
    ``data_args`` name the data, ``extra`` is appended to every command."""
    return {
        f"{model}-s{seed}": [
            sys.executable,
            script,
            "job",
            "--config",
            str(config_dir / f"{model}.yaml"),
            *data_args,
            "--seed",
            str(seed),
            "--run-dir",
            str(out_dir / f"{dataset}-{model}-s{seed}"),
            *extra,
        ]
        for model in models
        for seed in seeds
    }


def epoch_records(run_dir: Path) -> list[dict[str, Any]]:
    """A run folder's per-epoch records from its ``metrics.jsonl`` (``"type": "epoch"``: loss,
    ``train_s``, throughput, ``valid`` metrics when validated), in order, read by the report's
    :func:`shortlist.eval.report.read_history`; FileNotFoundError when the run has no log."""
    from shortlist.eval.report import HISTORY_FILE, read_history

    if not (Path(run_dir) / HISTORY_FILE).exists():
        raise FileNotFoundError(
            f"{Path(run_dir) / HISTORY_FILE}: the run folder has no training log."
        )
    return [r for r in read_history(run_dir) if r.get("type") == "epoch"]


def overrides_args(items: list[str] | None) -> list[str]:
    """``--set`` overrides passed on to each job: ["--set", KEY=VALUE, ...]."""
    return [arg for item in items or [] for arg in ("--set", item)]


def add_seed_run_args(
    parser: argparse.ArgumentParser, *, models: str, seeds: str, out_dir: str, baseline: str
) -> None:
    """The options of a ``run`` that trains every model x seed as parallel jobs (seqrec.py, ctr.py);
    ``baseline`` names the script whose result files ``--recbole-json`` takes."""
    parser.add_argument("--name", required=True, help="result file benchmarks/results/<name>.json")
    parser.add_argument("--dataset", required=True)
    parser.add_argument(
        "--models", default=models, help="config names (files <config-dir>/<name>.yaml)"
    )
    parser.add_argument(
        "--config-dir", help="folder of the model configs (default configs/<dataset>)"
    )
    parser.add_argument("--seeds", default=seeds)
    parser.add_argument("--parallel", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    parser.add_argument("--out-dir", default=out_dir)
    parser.add_argument("--set", action="append", help="override passed to every run (KEY=VALUE)")
    parser.add_argument(
        "--recbole-cmd", help="a shell command run beside our jobs (the RecBole baseline)"
    )
    parser.add_argument(
        "--recbole-json",
        nargs="*",
        default=[],
        help=f"result files or globs written by {baseline} (several: one per seed), added as rows",
    )
    parser.add_argument("--notes", default="")
    parser.add_argument(
        "--keep-rows",
        help="an earlier result file: its rows of models not in this run are kept (noted)",
    )
    parser.add_argument("--no-rebuild", action="store_true", help="do not rebuild BENCHMARKS.md")
    parser.add_argument(
        "--collect",
        action="store_true",
        help="start nothing: summarise the results.json already in --out-dir (missing runs noted)",
    )


@dataclass
class SeedRuns:
    """What :func:`run_seed_jobs` ran: per model, the (seed, results.json) of every finished run."""

    models: list[str]
    config_dir: Path
    results: dict[str, list[tuple[int, dict[str, Any]]]]
    missing: list[str]

    def notes(self, notes: str) -> str:
        """``notes`` plus the runs that have no result (``--collect`` on an unfinished job) and
        those that their time limit stopped (``stopped_by`` in results.json), not patience."""
        if self.missing:
            notes = f"{notes} Runs without results (not run, or not finished): {', '.join(self.missing)}."
        cut = [
            f"{model}-s{seed} (best epoch {res['best_epoch']} of {res['epochs_run']})"
            for model, per_seed in self.results.items()
            for seed, res in per_seed
            if res.get("stopped_by") == "time_limit"
        ]
        if cut:
            notes = f"{notes} Stopped by their time limit (train.time_limit_s), not by patience: {', '.join(cut)}."
        return notes.strip()


def run_seed_jobs(
    script: str, args: argparse.Namespace, *, data_args: list[str], extra: list[str]
) -> SeedRuns:
    """Run ``<script> job`` for every model x seed of ``args`` (see :func:`add_seed_run_args`),
    ``--recbole-cmd`` beside them, and read the run folders back. With ``--collect`` nothing runs and
    missing results are listed; otherwise a failed job or baseline stops with SystemExit."""
    models = args.models.split(",")
    config_dir = Path(args.config_dir) if args.config_dir else ROOT / "configs" / args.dataset
    seeds = [int(s) for s in args.seeds.split(",")]
    out_dir = Path(args.out_dir)
    jobs = seed_jobs(
        script, models, seeds, dataset=args.dataset, config_dir=config_dir, out_dir=out_dir,
        data_args=data_args, extra=[*extra, *overrides_args(args.set)],
    )  # fmt: skip
    logs = out_dir / "logs"
    failed: list[str] = []
    if not args.collect:
        baseline = subprocess.Popen(args.recbole_cmd, shell=True) if args.recbole_cmd else None
        failed = run_parallel(jobs, parallel=args.parallel, logs=logs)
        if baseline is not None and baseline.wait():
            failed.append(f"--recbole-cmd (exit {baseline.returncode})")
    if failed:
        raise SystemExit(f"runs failed: {failed}; see {logs}")
    results: dict[str, list[tuple[int, dict[str, Any]]]] = {m: [] for m in models}
    missing: list[str] = []
    for model in models:
        for seed in seeds:
            path = out_dir / f"{args.dataset}-{model}-s{seed}" / "results.json"
            if args.collect and not path.exists():  # a run that did not finish: say so, go on
                missing.append(f"{model}-s{seed}")
                continue
            results[model].append((seed, json.loads(path.read_text())))
    return SeedRuns(models, config_dir, results, missing)


def glob_paths(patterns: list[str]) -> list[Path]:
    """The files matching any of ``patterns`` (globs), sorted, each once."""
    return sorted({Path(f) for pattern in patterns for f in glob.glob(pattern)})


def glob_groups(items: list[str], option: str = "--group") -> dict[str, list[Path]]:
    """``["name=pattern", ...]`` -> {name: matching run folders} (``shortlist.eval.compare.
    expand_runs``); a name may be given several patterns. ValueError naming ``option`` for a
    malformed item, a pattern that matches nothing, or a group that is not one config's seeds
    (``shortlist.eval.compare.check_one_model``)."""
    from shortlist.eval.compare import check_one_model, expand_runs

    groups: dict[str, list[Path]] = {}
    for item in items:
        name, sep, pattern = item.partition("=")
        if not sep or not name or not pattern:
            raise ValueError(
                f"{option} expects NAME=PATTERN (a glob of run folders). Got {item!r}."
            )
        try:
            groups.setdefault(name, []).extend(expand_runs([pattern]))
        except FileNotFoundError as err:
            raise ValueError(f"{option} {name}: {err}") from None
    for name, runs in groups.items():
        check_one_model(runs, f"{option} {name}")
    return groups


def check_same_users(run: Path, split_name: str, ranked: np.ndarray, users: np.ndarray) -> None:
    """ValueError unless ``run``'s ranks of ``split_name`` (their ``users``, ``ranked``) are of the
    split file's examples (``users``), in the same order."""
    if not np.array_equal(np.asarray(users), np.asarray(ranked)):
        raise ValueError(
            f"{run / 'ranks.npz'} ranks other {split_name} users than --split: not the same split? "
            "(A run with eval.valid_targets > 1 validated on widen_validation(split, k).)"
        )


def groups_notes(groups: dict[str, list[Path]], notes: str = "") -> str:
    """A result's notes: ``notes`` followed by "Run folders: name: a, b; name2: c." (the folder
    names of :func:`glob_groups`' groups)."""
    folders = "Run folders: " + "; ".join(
        f"{k}: {', '.join(r.name for r in v)}" for k, v in groups.items()
    )
    return " ".join(x for x in (notes, folders + ".") if x)


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def seed_summary(per_seed: list[dict[str, float]]) -> dict[str, float]:
    """Mean and standard deviation (``<key>_std``) over seeds of every metric."""
    out: dict[str, float] = {}
    for key in per_seed[0]:
        out[key], out[f"{key}_std"] = mean_std([m[key] for m in per_seed])
    return out


if __name__ == "__main__":
    print(rebuild_benchmarks_md())
