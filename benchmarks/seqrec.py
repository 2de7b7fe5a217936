"""Sequential retrieval quality: our models over seeds, beside the anchors and a RecBole baseline
trained on the same split in the same run.

Three steps, so that the GPU box needs neither Polars nor the raw data:

    # here (CPU): load the dataset, split it by its protocol, save the split (a few MB of NumPy)
    python benchmarks/seqrec.py prepare --dataset amazon-beauty --out .gpu/amazon-beauty.npz
    # there (GPU): train every model x seed in parallel processes, optionally RecBole beside them
    python benchmarks/seqrec.py run --name seqrec_beauty --dataset amazon-beauty \
        --split .gpu/amazon-beauty.npz --models sasrec,hstu --seeds 0,1,2 --parallel 6
    # (``run`` writes benchmarks/results/<name>.json through benchmarks/common.py)

Each model uses its frozen config ``configs/<dataset>/<model>.yaml`` with ``train.seed`` set.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    ROOT,
    Row,
    add_seed_run_args,
    glob_paths,
    mean_std,
    run_seed_jobs,
    seed_summary,
    write_run_result,
)

log = logging.getLogger("benchmarks.seqrec")


def prepare(args: argparse.Namespace) -> None:
    from shortlist.train.config import load_config
    from shortlist.train.experiment import make_split

    cfg = load_config(ROOT / "configs" / args.dataset / f"{args.model}.yaml")
    split, _ = make_split(cfg)  # the config's dataset, split by its protocol
    split.save(args.out)
    log.info("%s: %s -> %s", args.dataset, split.summary(), args.out)


def job(args: argparse.Namespace) -> None:
    """One (model, seed) training run on a saved split; writes <run_dir>/results.json."""
    from shortlist.data.sequences import SequenceSplit
    from shortlist.train.config import load_config, parse_overrides
    from shortlist.train.experiment import run_on_split

    overrides: dict[str, Any] = {
        "train.seed": args.seed,
        "output_dir": args.run_dir,
        "train.progress": False,
    }
    overrides |= parse_overrides(args.set)
    cfg = load_config(args.config, overrides)
    run_on_split(cfg, SequenceSplit.load(args.split), resume=False)


def run(args: argparse.Namespace) -> None:
    from shortlist.train.config import load_config

    runs = run_seed_jobs(__file__, args, data_args=["--split", args.split], extra=[])
    protocol = load_config(runs.config_dir / f"{runs.models[0]}.yaml").protocol
    unmasked_protocol = f"{protocol}, history not masked"
    rows: list[Row] = []
    for model, per_seed in runs.results.items():
        name = f"shortlist {model}"
        for seed, res in per_seed:
            metrics = {
                **res["test"],
                **valid_at10(res),
                "best_epoch": res["best_epoch"],
                "train_s": res["train_seconds"],
                "sequences_per_s": res["sequences_per_s"],
            }
            rows.append(Row(args.dataset, protocol, name, f"seed={seed}", metrics))
            if "test_unmasked" in res:  # the protocol masks seen items; RecBole does not
                rows.append(
                    Row(
                        args.dataset,
                        unmasked_protocol,
                        name,
                        f"seed={seed}",
                        dict(res["test_unmasked"]),
                    )
                )
        if not per_seed:
            continue
        results = [res for _, res in per_seed]
        mean_label = f"mean of {len(results)} seeds"
        valid = [valid_at10(r) for r in results]
        summary = {k: mean_std([v[k] for v in valid])[0] for k in valid[0]}
        summary |= seed_summary([r["test"] for r in results])
        rows.append(Row(args.dataset, protocol, name, mean_label, summary))
        if all("test_unmasked" in r for r in results):
            unmasked = seed_summary([r["test_unmasked"] for r in results])
            rows.append(Row(args.dataset, unmasked_protocol, name, mean_label, unmasked))
    rb_paths = glob_paths(args.recbole_json)
    if len(rb_paths) == 1:
        rows += recbole_rows(json.loads(rb_paths[0].read_text()), args.dataset, protocol)
    elif rb_paths:  # several RecBole seeds: per-seed rows and their mean
        rows += recbole_summary(rb_paths, args.dataset, protocol)
    rows += anchor_rows(args.dataset, protocol)
    write_run_result(args, runs, rows)


def anchor_rows(dataset: str, protocol: str) -> list[Row]:
    """The published numbers of ``dataset`` under ``protocol`` (shortlist.eval.anchors) as rows."""
    from shortlist.eval.anchors import anchors_for

    return [
        Row(dataset, protocol, f"anchor: {a.method}", a.source, dict(a.metrics))
        for a in anchors_for(dataset, protocol)
    ]


def valid_at10(res: dict[str, Any]) -> dict[str, float]:
    """A run's validation metrics at cut-off 10, named ``valid_<metric>`` (what sweeps select by)."""
    return {f"valid_{k}": float(v) for k, v in res["valid"].items() if k.endswith("@10")}


def recbole_rows(rb: dict[str, Any], dataset: str, protocol: str) -> list[Row]:
    """RecBole's test metrics as rows: ranked by our own code under both masking rules when the
    harness computed them (``test_ours_masked`` / ``test_ours_unmasked``), else RecBole's evaluator
    (which never masks seen items for sequential models)."""
    extra = {
        "best_epoch": rb["best_epoch"],
        "epochs_run": rb["epochs_run"],
        "examples_per_s": rb["speed"]["train_examples_per_s"],
    }
    stopped = f"same split; stopped by {rb['stopped_by']} after {rb['epochs_run']} epochs"
    if "early_stop_on" in rb.get("evaluation", {}):
        stopped += f" (early stopping on {rb['evaluation']['early_stop_on']} valid ndcg@10)"
    unmasked_label = protocol if protocol == "tiger" else f"{protocol}, history not masked"
    if "test_ours_masked" in rb:
        out = [
            Row(
                dataset=dataset,
                protocol=unmasked_label,
                model="RecBole 1.2.1 sasrec",
                variant=stopped,
                metrics=dict(rb["test_ours_unmasked"]) | extra,
            )
        ]
        if protocol != "tiger":
            out.append(
                Row(
                    dataset=dataset,
                    protocol=protocol,
                    model="RecBole 1.2.1 sasrec",
                    variant=stopped,
                    metrics=dict(rb["test_ours_masked"]) | extra,
                )
            )
        return out
    return [
        Row(
            dataset=dataset,
            protocol=unmasked_label,
            model="RecBole 1.2.1 sasrec",
            variant=stopped,
            metrics=dict(rb["test"]) | extra,
        )
    ]


def recbole_summary(paths: list[Path], dataset: str, protocol: str) -> list[Row]:
    """Per-seed RecBole rows (both masking rules where computed) and their mean over the seeds."""
    per_seed: dict[str, list[Row]] = defaultdict(list)
    out: list[Row] = []
    for path in paths:
        rb = json.loads(path.read_text())
        seed = rb.get("config", {}).get("seed", path.stem)
        for row in recbole_rows(rb, dataset, protocol):
            row = Row(
                row.dataset, row.protocol, row.model, f"seed={seed}; {row.variant}", row.metrics
            )
            per_seed[row.protocol].append(row)
            out.append(row)
    for proto, rows in per_seed.items():
        if len(rows) > 1:
            keys = [k for k in rows[0].metrics if "@" in k or k == "mrr"]
            summary = seed_summary([{k: r.metrics[k] for k in keys} for r in rows])
            summary["best_epoch"] = mean_std([float(r.metrics["best_epoch"]) for r in rows])[0]
            out.append(Row(dataset, proto, rows[0].model, f"mean of {len(rows)} seeds", summary))
    return out


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="split a dataset by its protocol and save it (.npz)")
    p.add_argument("--dataset", required=True)
    p.add_argument("--model", default="sasrec", help="config whose protocol is used")
    p.add_argument("--out", required=True)
    j = sub.add_parser("job", help="one training run (used by run)")
    j.add_argument("--config", required=True)
    j.add_argument("--split", required=True)
    j.add_argument("--seed", type=int, required=True)
    j.add_argument("--run-dir", required=True)
    j.add_argument("--set", action="append")
    r = sub.add_parser("run", help="all models x seeds in parallel, then the result file")
    r.add_argument("--split", required=True)
    add_seed_run_args(
        r, models="sasrec,hstu", seeds="0,1,2", out_dir="runs/bench",
        baseline="benchmarks/recbole/run_sasrec.py",
    )  # fmt: skip
    args = parser.parse_args()
    {"prepare": prepare, "job": job, "run": run}[args.cmd](args)


if __name__ == "__main__":
    main()
