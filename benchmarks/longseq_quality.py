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
the two truncated full-attention runs).

    python benchmarks/longseq_quality.py --from /path/with/longseq_*.json
"""

from __future__ import annotations

import argparse
import json
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
    parts = {n: json.loads((src / f"{n}.json").read_text()) for n in PARTS if n not in missing}
    skipped = [f"{n}: {args.why_missing}" for n in missing]
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
        extra={"commit": newest["commit"], "date": newest["date"], "machine": newest["machine"]},
    )


if __name__ == "__main__":
    main()
