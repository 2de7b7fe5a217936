"""Pick one config per model family from a sweep by a validation metric, and write the result file.

A sweep is one ``benchmarks/seqrec.py run`` over several configs of each family (``sasrec-d128``,
``sasrec-d256``, ... are family ``sasrec``: the name up to the first ``-``), every config with the
same seeds, in one run. For each family this keeps the config with the best mean *validation* metric
(``--by``, default ``valid_ndcg@10``; test metrics are never looked at) and writes its per-seed and
mean rows, renamed ``shortlist <family>`` with the config in the variant, to ``--name``. RecBole
runs of several seeds (``--recbole`` files written by ``benchmarks/recbole/run_sasrec.py``) become
per-seed rows and a mean row, and the anchors of the dataset and protocol are appended. The notes list
every config's validation metric, so the choice can be checked.

    python benchmarks/select_configs.py --sweep runs/sweep_beauty.json --families sasrec,hstu \\
        --name seqrec_beauty --recbole runs/rb_beauty_s*.json

Several ``--sweep`` files (later rounds of candidates on the same split and protocol) are read as
one sweep; a config may appear in only one of them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Row, command_line, glob_paths, write_result
from seqrec import anchor_rows, recbole_summary


def family(config: str) -> str:
    """``sasrec-d128`` -> ``sasrec``; ``ksa`` -> ``ksa``."""
    return config.split("-", 1)[0]


def config_means(rows: list[dict[str, Any]], by: str) -> dict[str, dict[str, Any]]:
    """Config -> its mean-over-seeds row under the sweep's protocol (not the unmasked variant)."""
    return {
        r["model"].removeprefix("shortlist "): r
        for r in rows
        if r["variant"].startswith("mean")
        and r["model"].startswith("shortlist ")
        and "history not masked" not in r["protocol"]
        and by in r["metrics"]
    }


def choose(
    rows: list[dict[str, Any]], families: list[str], by: str
) -> dict[str, tuple[str, float]]:
    """Family -> (config, its mean validation metric ``by``), the best config of each family.

    Raises ``SystemExit`` naming the family when no config of it has ``by`` in its mean row.
    """
    means = config_means(rows, by)
    out = {}
    for fam in families:
        scores = {c: float(r["metrics"][by]) for c, r in means.items() if family(c) == fam}
        if not scores:
            raise SystemExit(f"no config of family {fam!r} has {by!r} in the sweep's mean rows")
        best = max(scores, key=scores.__getitem__)
        out[fam] = (best, scores[best])
    return out


def select(
    sweep: dict[str, Any], families: list[str], by: str
) -> tuple[list[Row], dict[str, tuple[str, float]], str]:
    """The chosen configs' rows, renamed to their family, the choice, and a note of every score."""
    rows = sweep["rows"]
    chosen = choose(rows, families, by)
    means = config_means(rows, by)
    out: list[Row] = []
    for fam, (config, _) in chosen.items():
        n = sum(1 for c in means if family(c) == fam)
        for r in rows:
            if r["model"] != f"shortlist {config}":
                continue
            variant = f"{r['variant']}; config {config}"
            if r["variant"].startswith("mean"):
                variant += f", chosen by {by} among {n}"
            out.append(Row(r["dataset"], r["protocol"], f"shortlist {fam}", variant, r["metrics"]))
    scores = ", ".join(f"{c} {r['metrics'][by]:.4f}" for c, r in means.items())
    note = f"Chosen by mean {by} over the seeds; every config: {scores}."
    return out, chosen, note


def merge_sweeps(paths: list[str]) -> dict[str, Any]:
    """The sweeps' rows as one sweep (their commands joined); raises ``SystemExit`` naming the files
    when a config has mean rows in two of them, or when they differ in dataset."""
    rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    datasets: set[str] = set()
    commands = []
    for i, path in enumerate(paths):
        sweep = json.loads(Path(path).read_text())
        for r in sweep["rows"]:
            if r["model"].startswith("shortlist ") and r["variant"].startswith("mean"):
                config = r["model"].removeprefix("shortlist ")
                if seen.get(config, i) != i:
                    raise SystemExit(
                        f"config {config!r} is in both {paths[seen[config]]} and {path}"
                    )
                seen[config] = i
                datasets.add(r["dataset"])
        rows += sweep["rows"]
        commands.append(sweep["command"])
    if len(datasets) > 1:
        raise SystemExit(f"the sweeps {paths} are of different datasets: {sorted(datasets)}")
    return {"rows": rows, "command": " | ".join(commands)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--sweep", required=True, nargs="+", help="result JSON(s) of the sweep (seqrec.py run)"
    )
    p.add_argument("--families", required=True, help="comma-separated model families to keep")
    p.add_argument("--by", default="valid_ndcg@10", help="validation metric of the mean rows")
    p.add_argument("--name", required=True, help="result name: benchmarks/results/<name>.json")
    p.add_argument("--recbole", nargs="*", default=[], help="RecBole result files (globs)")
    p.add_argument("--notes", default="")
    p.add_argument("--no-rebuild", action="store_true", help="do not rebuild BENCHMARKS.md")
    args = p.parse_args(argv)

    sweep = merge_sweeps(args.sweep)
    rows, chosen, note = select(sweep, args.families.split(","), args.by)
    if not rows:
        raise SystemExit(f"{args.sweep}: no rows of the chosen configs")
    dataset, protocol = rows[0].dataset, rows[0].protocol.split(",")[0]
    rows += recbole_summary(glob_paths(args.recbole), dataset, protocol)
    rows += anchor_rows(dataset, protocol)
    notes = " ".join(x for x in (args.notes, note, f"Sweep: {sweep['command']}") if x)
    write_result(args.name, rows, command=command_line(), notes=notes, rebuild=not args.no_rebuild)
    for fam, (config, score) in chosen.items():
        print(f"{fam}: {config} ({args.by} {score:.4f})")


if __name__ == "__main__":
    main()
