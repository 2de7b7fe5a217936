"""Data-layer costs: time and peak memory to prepare ML-1M and 10^7 synthetic events, and the rate of
batch building.

Each measurement runs in a fresh Python process (so peak RSS is that step's own), with a temporary
cache folder. Writes ``benchmarks/results/data_prepare.json``.

Usage:
    python benchmarks/data_prepare.py                       # ml-1m (when present) + 10^7 synthetic events
    python benchmarks/data_prepare.py --events 1000000      # a quicker run
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Row, peak_rss_mib, write_result

log = logging.getLogger("benchmarks.data_prepare")


# -- steps, each run in its own process -------------------------------------------------------


def step_load(name: str, refresh: bool) -> dict[str, Any]:
    from shortlist.data.datasets import load_dataset

    start = time.perf_counter()
    data = load_dataset(name, download=False, refresh=refresh)
    elapsed = time.perf_counter() - start
    return {
        "seconds": elapsed,
        "events": data.num_interactions,
        "users": data.num_users,
        "items": data.num_items,
    }


def _synthetic_config(events: int) -> Any:
    from shortlist.data.synthetic import SyntheticConfig, count_events

    base = SyntheticConfig()
    per_user = count_events(SyntheticConfig(n_users=20_000, n_items=base.n_items)) / 20_000
    n_users = max(1, round(events / per_user))
    return SyntheticConfig(
        n_users=n_users, n_items=max(10_000, events // 500), n_topics=256, n_categories=20
    )


def step_synthetic_write(events: int, out_dir: str) -> dict[str, Any]:
    from shortlist.data.synthetic import write_parquet

    config = _synthetic_config(events)
    start = time.perf_counter()
    files = write_parquet(config, out_dir)
    return {
        "seconds": time.perf_counter() - start,
        "events": files.n_events,
        "users": files.n_users,
        "items": files.n_items,
    }


def step_synthetic_prepare(out_dir: str, cache_dir: str) -> dict[str, Any]:
    from shortlist.data.cache import entry_dir, write_prepared
    from shortlist.data.synthetic import read_parquet

    start = time.perf_counter()
    data = read_parquet(out_dir)  # validate + re-index through build_dataset
    write_prepared(data, entry_dir(Path(cache_dir), "synthetic-bench", "x"))
    return {
        "seconds": time.perf_counter() - start,
        "events": data.num_interactions,
        "users": data.num_users,
        "items": data.num_items,
    }


def step_synthetic_reload(cache_dir: str) -> dict[str, Any]:
    from shortlist.data.cache import entry_dir, read_prepared

    start = time.perf_counter()
    data = read_prepared(entry_dir(Path(cache_dir), "synthetic-bench", "x"))
    assert data is not None
    return {"seconds": time.perf_counter() - start, "events": data.num_interactions}


def step_batches(
    source: str, num_workers: int, n_batches: int, num_negatives: int, negatives_per: str
) -> dict[str, Any]:
    from shortlist.data.datasets import load_dataset
    from shortlist.data.loader import batch_throughput

    data = load_dataset(source, download=False)
    stats = batch_throughput(
        data.sequences(),
        batch_size=256,
        max_len=200,
        num_negatives=num_negatives,
        num_workers=num_workers,
        n_batches=n_batches,
        negatives_per=negatives_per,
    )
    return {"seconds": 0.0, **stats}


def step_swing(source: str) -> dict[str, Any]:
    """Swing item-item similarity (default caps, top 50) and user-to-item pairs on ``source``."""
    from shortlist.data.datasets import load_dataset
    from shortlist.data.pairs import SwingConfig, swing, user_to_item_pairs

    data = load_dataset(source, download=False)
    start = time.perf_counter()
    neighbours = swing(data, SwingConfig())
    swing_s = time.perf_counter() - start
    pairs = user_to_item_pairs(data, neighbours=neighbours)
    return {
        "seconds": swing_s,
        "u2i_s": time.perf_counter() - start - swing_s,
        "pairs": len(pairs.trigger),
        "events": data.num_interactions,
    }


STEPS = {
    "swing": step_swing,
    "load": step_load,
    "synthetic_write": step_synthetic_write,
    "synthetic_prepare": step_synthetic_prepare,
    "synthetic_reload": step_synthetic_reload,
    "batches": step_batches,
}


def run_step(step: str, env: dict[str, str], **kwargs: Any) -> dict[str, Any]:
    """Run one step in a fresh interpreter; returns its result plus its own peak RSS."""
    cmd = [sys.executable, __file__, "--step", step, "--kwargs", json.dumps(kwargs)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"step {step} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--events", type=int, default=10_000_000, help="synthetic events to generate"
    )
    parser.add_argument(
        "--batches", type=int, default=200, help="batches per throughput measurement"
    )
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--kwargs", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        result = STEPS[args.step](**json.loads(args.kwargs))
        result["peak_mib"] = peak_rss_mib()
        print(json.dumps(result))
        return

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "SHORTLIST_CACHE": str(Path(tmp) / "cache")}
        from shortlist.data.datasets import get_spec, locate

        have_ml1m = locate(get_spec("ml-1m")) is not None
        if have_ml1m:
            parse = run_step("load", env, name="ml-1m", refresh=True)
            cached = run_step("load", env, name="ml-1m", refresh=False)
            log.info("ml-1m parse %.2fs, cached reload %.2fs", parse["seconds"], cached["seconds"])
            rows.append(
                Row(
                    dataset="ml-1m",
                    model="prepare",
                    variant="parse + validate + cache",
                    metrics={
                        "events": parse["events"],
                        "time_s": parse["seconds"],
                        "peak_mib": parse["peak_mib"],
                        "events_per_s": parse["events"] / parse["seconds"],
                    },
                )
            )
            rows.append(
                Row(
                    dataset="ml-1m",
                    model="prepare",
                    variant="reload from cache",
                    metrics={
                        "events": cached["events"],
                        "time_s": cached["seconds"],
                        "peak_mib": cached["peak_mib"],
                        "events_per_s": cached["events"] / cached["seconds"],
                        "cache_speedup_ratio": parse["seconds"] / cached["seconds"],
                    },
                )
            )
        else:
            log.warning("ml-1m not found (set SHORTLIST_DATA): skipping its rows")

        out_dir = str(Path(tmp) / "synthetic")
        for step, variant, kwargs in (
            (
                "synthetic_write",
                "generate, stream to Parquet",
                {"events": args.events, "out_dir": out_dir},
            ),
            (
                "synthetic_prepare",
                "validate + re-index + cache",
                {"out_dir": out_dir, "cache_dir": env["SHORTLIST_CACHE"]},
            ),
            ("synthetic_reload", "reload from cache", {"cache_dir": env["SHORTLIST_CACHE"]}),
        ):
            res = run_step(step, env, **kwargs)
            log.info("synthetic %s: %s", step, res)
            rows.append(
                Row(
                    dataset=f"synthetic-{res['events']:.0e}".replace("+0", ""),
                    model="prepare",
                    variant=variant,
                    metrics={
                        "events": res["events"],
                        "time_s": res["seconds"],
                        "peak_mib": res["peak_mib"],
                        "events_per_s": res["events"] / res["seconds"],
                    },
                )
            )

        source = "ml-1m" if have_ml1m else "ml-100k"
        res = run_step("swing", env, source=source)
        log.info("swing on %s: %s", source, res)
        rows.append(
            Row(
                dataset=source,
                model="swing",
                variant="top-50, caps 300 users/item, 500 items/user; + u2i pairs",
                metrics={
                    "events": res["events"],
                    "time_s": res["seconds"],
                    "u2i_pairs_time_s": res["u2i_s"],
                    "u2i_pairs": res["pairs"],
                    "peak_mib": res["peak_mib"],
                },
            )
        )
        # K=1 negative per position (BPR-style SASRec) and K=128 negatives shared per row (sampled softmax).
        for k, per in ((1, "position"), (128, "row")):
            for workers in (0, 2):
                res = run_step(
                    "batches",
                    env,
                    source=source,
                    num_workers=workers,
                    n_batches=args.batches,
                    num_negatives=k,
                    negatives_per=per,
                )
                log.info("batches (K=%d per %s, %d workers): %s", k, per, workers, res)
                rows.append(
                    Row(
                        dataset=source,
                        model="batches",
                        variant=f"B=256 L=200 K={k} per {per}, {workers} workers",
                        metrics={
                            "events_per_s": res["events_per_s"],
                            "batches_per_s": res["batches_per_s"],
                            "main_cpu_per_batch_s": res["main_cpu_per_batch_s"],
                        },
                    )
                )
    write_result(
        "data_prepare",
        rows,
        notes="peak_mib is each step's own process peak RSS; "
        "events counts input events; batch events are non-padding positions.",
    )


if __name__ == "__main__":
    main()
