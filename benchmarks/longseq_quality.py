"""Long-history quality (issue 4): KSA and ELASTIC against SASRec / full attention, one file.

The runs themselves are ``benchmarks/seqrec.py run`` calls made on the GPU by
``benchmarks/gpu/sweeps.sh`` (one job, so every comparison is within one run); on ML-100k and
Beauty each family's config is chosen by validation NDCG@10 among the sweep's
(``benchmarks/select_configs.py``):

- ``longseq_ml100k``: ML-100k, HSTU protocol, SASRec / KSA / ELASTIC at max length 200;
- ``longseq_beauty``: Amazon Beauty, TIGER protocol (histories capped at 20), same settings as SASRec;
- ``longseq_mls``: MovieLens latest-small, HSTU protocol, SASRec at 200 vs KSA / ELASTIC at 2,048;
- ``longseq_synthetic``: planted long-range interests (``benchmarks/longseq_synthetic.py``), full
  attention truncated to 512 and 2,048 vs KSA / ELASTIC over the whole 10^4-event history.

This script merges their result files (a part whose file is absent is named in the notes as not
measured, with ``--why-missing``) into ``benchmarks/results/longseq_quality.json``, keeps the
mean-over-seeds rows (and every seed row), and adds to each row ``ndcg@10_vs_baseline_ratio`` and
``ndcg@10_gap`` against the baseline of the same run (SASRec; on the synthetic split the better of
the two truncated full-attention runs). The file also records each part's command, commit, date,
machine and notes under ``parts``, so that ``--base`` can update one part: the parts absent from
``--from`` are then carried from the base file (its rows of that part's dataset and its record),
instead of being listed as not measured. A part's own files and run folders need not outlive the
checkout they were made in (on 2026-11-30 a new checkout had no ``runs/``).

    python benchmarks/longseq_quality.py --from /path/with/longseq_*.json
    python benchmarks/longseq_quality.py --from benchmarks/results --base benchmarks/results/longseq_quality.json
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Row, write_result

PARTS = {
    "longseq_ml100k": ("sasrec",),
    "longseq_beauty": ("sasrec",),
    "longseq_mls": ("sasrec",),
    # the truncated full attention: chosen by validation between 512 and 2,048 (select_configs.py,
    # family "sasrec"), or, in a part made without that choice, the better of the two
    "longseq_synthetic": ("sasrec", "sasrec-long512", "sasrec-long2048"),
}


# the dataset of each part's rows (a part carried from --base is its rows of this dataset)
DATASETS = {
    "longseq_ml100k": "ml-100k",
    "longseq_beauty": "amazon-beauty",
    "longseq_mls": "ml-latest-small",
    "longseq_synthetic": "synthetic-long",
}
RECORD = ("command", "commit", "date", "machine", "notes")


def _legacy_records(base: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Part records of a file written before ``parts`` was recorded: its notes were ``"runs: " +
    " | ".join(commands) + " | notes: " + " | ".join(f"{name}: {notes}")``, the commands in
    :data:`PARTS` order, one per part present; commit, date and machine were the newest part's
    (the file's own), so a carried part keeps those."""
    runs, sep, notes = base.get("notes", "").partition(" | notes: ")
    present = [n for n in PARTS if any(r["dataset"] == DATASETS[n] for r in base["rows"])]
    commands = runs.removeprefix("runs: ").split(" | ") if sep else []
    if len(commands) != len(present):
        raise ValueError(
            f"{base.get('name')}: its notes hold {len(commands)} commands for {len(present)} parts;"
            " cannot tell which is whose. Merge all parts again with --from and no --base."
        )
    notes = re.sub(r" \| not measured: .*$", "", notes)
    pattern = r"(?:^| \| )(" + "|".join(PARTS) + r"): "
    pieces = re.split(pattern, notes)  # ["", name, text, name, text, ...]
    texts = dict(zip(pieces[1::2], pieces[2::2], strict=True))
    return {
        n: {"command": c, "commit": base["commit"], "date": base["date"],
            "machine": base["machine"], "notes": texts.get(n, "")}
        for n, c in zip(present, commands, strict=True)
    }  # fmt: skip


def carried_parts(base: dict[str, Any], names: list[str]) -> dict[str, dict[str, Any]]:
    """Parts ``names`` rebuilt from a merged file: each one's record and its dataset's rows."""
    records = base.get("parts") or _legacy_records(base)
    out = {}
    for name in names:
        rows = [r for r in base["rows"] if r["dataset"] == DATASETS[name]]
        if name not in records or not rows:
            continue
        out[name] = {**{k: records[name].get(k, "") for k in RECORD}, "rows": rows}
    return out


def _is_mean(row: dict[str, Any]) -> bool:
    return row["variant"].startswith("mean")


def merge(parts: dict[str, dict[str, Any]]) -> tuple[list[Row], list[str]]:
    rows: list[Row] = []
    commands = []
    for name, result in parts.items():
        commands.append(result["command"])
        ours = [r for r in result["rows"] if not r["model"].startswith("anchor")]
        for protocol in sorted({r["protocol"] for r in ours}):
            group = [r for r in ours if r["protocol"] == protocol]
            base = [r for r in group if _is_mean(r) and r["model"].split()[-1] in PARTS[name]]
            best = max((r["metrics"]["ndcg@10"] for r in base), default=None)
            for r in group:
                metrics = dict(r["metrics"])
                if best and _is_mean(r):
                    metrics["ndcg@10_vs_baseline_ratio"] = metrics["ndcg@10"] / best
                    metrics["ndcg@10_gap"] = metrics["ndcg@10"] - best
                rows.append(
                    Row(
                        dataset=r["dataset"],
                        protocol=protocol,
                        model=r["model"],
                        variant=r["variant"],
                        metrics=metrics,
                    )
                )
    return rows, commands


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--from", dest="src", required=True, help="folder holding the longseq_*.json")
    p.add_argument(
        "--command",
        default="bash benchmarks/gpu/sweeps.sh (then --wait calls); "
        "python benchmarks/longseq_quality.py --from <the folder of its results>",
        help="how the parts were made, for the result file",
    )
    p.add_argument(
        "--base",
        help="a merged longseq_quality.json: the parts absent from --from are carried from it "
        "(their rows and records) instead of being listed as not measured",
    )
    p.add_argument(
        "--why-missing",
        default="no result file",
        help="recorded in the notes for each part whose result file is absent",
    )
    args = p.parse_args()
    src = Path(args.src)
    missing = [n for n in PARTS if not (src / f"{n}.json").exists()]
    if len(missing) == len(PARTS):
        raise SystemExit(
            f"{src}: none of the result files {sorted(PARTS)} is there (benchmarks/gpu/sweeps.sh "
            "and benchmarks/select_configs.py write them)"
        )
    found = {n: json.loads((src / f"{n}.json").read_text()) for n in PARTS if n not in missing}
    carried = {}
    if args.base:
        carried = carried_parts(json.loads(Path(args.base).read_text()), missing)
    parts = {n: found.get(n) or carried[n] for n in PARTS if n in found or n in carried}
    skipped = [f"{n}: {args.why_missing}" for n in missing if n not in carried]
    rows, commands = merge(parts)
    # the file's commit, date and machine are those of its newest part (each part's own are in its
    # rows' notes and commands); ties keep the first in PARTS order
    newest = max(parts.values(), key=lambda p: p["date"])
    write_result(
        "longseq_quality",
        rows,
        command=args.command,
        notes="runs: "
        + " | ".join(commands)
        + " | notes: "
        + " | ".join(f"{n}: {p['notes']}" for n, p in parts.items() if p.get("notes"))
        + "".join(f" | not measured: {m}" for m in skipped),
        extra={
            "commit": newest["commit"],
            "date": newest["date"],
            "machine": newest["machine"],
            "parts": {n: {k: p.get(k, "") for k in RECORD} for n, p in parts.items()},
        },
    )


if __name__ == "__main__":
    main()
