"""ML-1M CTR over several random splits: how much of the gap to RecBole's published AUC is the split.

RecBole's published ML-1M AUCs (DCNV2 0.8998, DeepFM 0.8997; ANCHORS.md section 3) come from one
random 8:1:1 split. With 73,901 test rows, the AUC of one model moves by about 0.001 from one
random split to another, so a single split's number carries that much luck. This script merges
``benchmarks/ctr.py run`` result files made on different split seeds (``ctr.py prepare
--split-seed S``; each with RecBole's tuned DCNV2 and DeepFM trained on exactly the same rows,
``--recbole-json``) into ``benchmarks/results/ctr_ml1m_splits.json``:

- per split, the mean-over-seeds row (or the one seed row) of every model run on every split,
  ours and RecBole's (as in its source file);
- per model, the mean and std over the splits of those means (``splits`` = how many);
- per split and over splits, each of our models' AUC minus the better of RecBole's two tuned
  models on the same rows (``auc_vs_best_recbole_gap``).

    python benchmarks/ctr_splits.py --split 2020=benchmarks/results/ctr_ml1m.json \\
        --split 1=benchmarks/results/ctr_ml1m_split1.json --split 2=benchmarks/results/ctr_ml1m_split2.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Row, write_result

OURS = "shortlist "
RECBOLE = "RecBole 1.2.1 "


def model_means(result: dict[str, Any]) -> dict[str, dict[str, float]]:
    """{model name: metrics} of one ``ctr.py run`` result, ours and RecBole's: each model's
    mean-over-seeds row, or, for a model run with one seed (which has no mean row), that seed's row."""
    means: dict[str, dict[str, float]] = {}
    single: dict[str, list[dict[str, float]]] = {}
    for row in result["rows"]:
        name, variant = row["model"], row["variant"]
        if not name.startswith((OURS, RECBOLE)):
            continue  # anchors
        if variant.startswith("mean of"):
            means[name] = dict(row["metrics"]) | {"seeds": float(variant.split()[2])}
        elif variant.startswith("seed="):
            single.setdefault(name, []).append(dict(row["metrics"]) | {"seeds": 1.0})
    for name, rows in single.items():
        if name not in means and len(rows) == 1:
            means[name] = rows[0]
    return means


def merge(splits: dict[str, dict[str, Any]]) -> list[Row]:
    """Rows of ``ctr_ml1m_splits`` (module docstring) from {split seed: ctr.py run result}.

    Only models present on every split are kept (a RecBole setting run on one split only, such as
    RecBole's defaults on split 2020, is left out); the gaps are to the better of the RecBole
    models kept."""
    per_split = {seed: model_means(res) for seed, res in splits.items()}
    names = sorted(set.intersection(*(set(means) for means in per_split.values())))
    recbole = [n for n in names if n.startswith(RECBOLE)]
    if not recbole:
        raise SystemExit(
            "no RecBole model was run on every split (run ctr.py run with --recbole-json on each)"
        )
    best_rb = {seed: max(means[n]["auc"] for n in recbole) for seed, means in per_split.items()}
    rows: list[Row] = []
    for seed, means in per_split.items():
        for name in names:
            m = means[name]
            metrics = {k: m[k] for k in ("auc", "gauc", "logloss", "seeds") if k in m}
            if name.startswith(OURS):
                metrics["auc_vs_best_recbole_gap"] = m["auc"] - best_rb[seed]
            rows.append(
                Row("ml-1m-ctr", f"ctr, split seed {seed}", name, "mean over seeds", metrics)
            )
    for name in names:
        auc = np.array([per_split[s][name]["auc"] for s in per_split])
        metrics = {
            "auc": float(auc.mean()),
            "auc_std": float(auc.std(ddof=1)) if len(auc) > 1 else 0.0,
            "splits": float(len(auc)),
        }
        if name.startswith(OURS):
            metrics["auc_vs_best_recbole_gap"] = float(
                np.mean([per_split[s][name]["auc"] - best_rb[s] for s in per_split])
            )
        rows.append(Row("ml-1m-ctr", "ctr", name, f"mean over {len(auc)} splits", metrics))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--split",
        action="append",
        required=True,
        metavar="SEED=RESULT_JSON",
        help="a split seed and the ctr.py run result made on it (repeat for each split)",
    )
    p.add_argument("--notes", default="")
    p.add_argument("--no-rebuild", action="store_true")
    args = p.parse_args()
    splits: dict[str, dict[str, Any]] = {}
    for item in args.split:
        seed, sep, path = item.partition("=")
        if not sep or not seed or not path:
            p.error(f"--split must be SEED=RESULT_JSON; got {item!r}")
        if not Path(path).is_file():
            p.error(f"--split {item!r}: no such result file {path!r}")
        splits[seed] = json.loads(Path(path).read_text())
    commands = " | ".join(
        f"split {s}: {r['command']} (commit {r['commit']})" for s, r in splits.items()
    )
    write_result(
        "ctr_ml1m_splits",
        merge(splits),
        notes=(args.notes + " " if args.notes else "") + "Sources: " + commands,
        rebuild=not args.no_rebuild,
    )


if __name__ == "__main__":
    main()
