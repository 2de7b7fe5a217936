"""Item-text cleaning and MinHash-LSH deduplication on real item titles (CT-LLM's pipeline, adapted).

For Amazon Beauty (12,101 titles) and MicroLens (19,220 video titles): the heuristic rules of
``shortlist.items.text.clean_texts`` (counts by reason), then ``MinHashDeduplicator`` on the kept
texts in three settings:

- ``k=13``: CT-LLM's setting, character 13-grams, 128 permutations, 9 bands x 13 rows;
- ``k=5``: 5-grams with the same 9 x 13 banding (edited short titles keep a higher Jaccard);
- ``k=5`` with 32 x 4 banding: a title-scale LSH (P(candidate) > 0.98 from Jaccard 0.6).

Every setting checks candidates with the exact Jaccard >= 0.7. Rows: one per dataset and setting;
the 5 largest clusters with their titles and a seeded sample of near-duplicate clusters go to the
JSON's ``details`` field. A dataset that is absent is skipped with a logged reason.

Usage:
    python benchmarks/text_dedup.py
    python benchmarks/text_dedup.py --datasets microlens --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Row, write_result
from shortlist.data.datasets import load_dataset
from shortlist.data.errors import DatasetNotFoundError
from shortlist.items.text import (
    REASONS,
    MinHashDeduplicator,
    TextFilterConfig,
    candidate_probability,
    clean_texts,
    normalize,
)

log = logging.getLogger("benchmarks.text_dedup")


class SkipDataset(Exception):
    """A dataset that cannot be measured here; the message says why."""


DATASETS = ("amazon-beauty", "microlens")
# (variant, deduplicator arguments); threshold 0.7 and verification everywhere
SETTINGS: tuple[tuple[str, dict[str, int]], ...] = (
    ("k=13 (ct-llm)", {"shingle_size": 13, "bands": 9, "rows": 13}),
    ("k=5", {"shingle_size": 5, "bands": 9, "rows": 13}),
    ("k=5", {"shingle_size": 5, "bands": 32, "rows": 4}),
)


def _cluster_record(
    cluster: np.ndarray, texts: list[str], item_ids: list[Any], max_titles: int = 6
) -> dict[str, Any]:
    keys = {normalize(texts[i]).casefold() for i in cluster}
    return {
        "size": len(cluster),
        "distinct_texts": len(keys),
        "item_ids": [str(item_ids[i]) for i in cluster[:20]],
        "titles": [texts[i] for i in cluster[:max_titles]],
    }


def _without_texts(details: dict[str, Any]) -> dict[str, Any]:
    """The result file keeps item IDs only: the titles belong to the datasets, whose terms forbid
    redistribution (they are logged for local inspection instead)."""
    if isinstance(details, dict):
        return {
            k: _without_texts(v)
            for k, v in details.items()
            if k not in ("titles", "filtered_examples")
        }
    if isinstance(details, list):
        return [_without_texts(v) for v in details]
    return details


def run_dataset(name: str, data_dir: str | None, seed: int) -> tuple[list[Row], dict[str, Any]]:
    data = load_dataset(name, data_dir=data_dir, download=False)
    items = data.items
    if "title" not in items.columns:
        raise SkipDataset(f"{name} has no 'title' column (columns: {items.columns})")
    n_null = items["title"].null_count()
    if n_null:
        log.warning("%s: %d null titles are treated as empty strings", name, n_null)
    titles = items["title"].fill_null("").to_list()
    item_ids = items["item_id"].to_list()
    n = len(titles)

    start = time.perf_counter()
    cleaned = clean_texts(titles, TextFilterConfig())
    clean_s = time.perf_counter() - start
    kept_idx = np.flatnonzero(cleaned.kept)
    texts = [cleaned.texts[i] for i in kept_idx]
    kept_ids = [item_ids[i] for i in kept_idx]
    counts = cleaned.reason_counts()
    log.info(
        "%s: %d titles, %d kept after the rules (%.2fs); broken rules: %s",
        name,
        n,
        len(texts),
        clean_s,
        {r: c for r, c in counts.items() if c},
    )
    details: dict[str, Any] = {
        "texts": n,
        "kept_after_filters": len(texts),
        "filtered_by_reason": counts,
        "filtered_examples": {
            r: [titles[i] for i in range(n) if r in cleaned.reasons[i]][:3]
            for r in REASONS
            if counts[r]
        },
        "settings": {},
    }

    rows = []
    rng = np.random.default_rng(seed)
    for variant, params in SETTINGS:
        model = f"minhash-lsh {params['bands']}x{params['rows']}"
        dedup = MinHashDeduplicator(**params, threshold=0.7, seed=seed)
        start = time.perf_counter()
        dedup.fit(texts)
        dedup_s = time.perf_counter() - start
        near_members = set(dedup.pairs_.ravel().tolist())
        near_clusters = [c for c in dedup.clusters_ if near_members.intersection(c.tolist())]
        total_s = clean_s + dedup_s
        metrics = {
            "texts": n,
            "kept_after_filters": len(texts),
            "exact_duplicates": dedup.n_exact_duplicates_,
            "candidate_pairs": dedup.n_candidate_pairs_,
            "near_duplicate_pairs": len(dedup.pairs_),
            "duplicate_clusters": len(dedup.clusters_),
            "near_duplicate_clusters": len(near_clusters),
            "items_in_clusters": int(sum(len(c) for c in dedup.clusters_)),
            "kept_after_dedup": int(dedup.keep_mask_.sum()),
            "clean_s": round(clean_s, 3),
            "dedup_s": round(dedup_s, 3),
            "time_s": round(total_s, 3),
            "time_per_1k_s": round(1000 * total_s / max(n, 1), 4),
        }
        rows.append(
            Row(dataset=name, protocol="item titles", model=model, variant=variant, metrics=metrics)
        )
        sample = rng.choice(len(near_clusters), size=min(8, len(near_clusters)), replace=False)
        details["settings"][f"{model} {variant}"] = {
            "params": dedup.get_params(),
            "p_candidate_at_jaccard": {
                str(s): round(float(candidate_probability(s, params["bands"], params["rows"])), 4)
                for s in (0.5, 0.7, 0.8, 0.9)
            },
            "largest_clusters": [
                _cluster_record(c, texts, kept_ids) for c in dedup.largest_clusters(5)
            ],
            "sample_near_duplicate_clusters": [
                _cluster_record(near_clusters[i], texts, kept_ids) for i in sorted(sample)
            ],
        }
        log.info(
            "%s %s %s: %d exact duplicates, %d near pairs, %d clusters (%d with near pairs), "
            "%d items in clusters, %.2fs (%.3fs per 1k)",
            name,
            model,
            variant,
            metrics["exact_duplicates"],
            metrics["near_duplicate_pairs"],
            metrics["duplicate_clusters"],
            metrics["near_duplicate_clusters"],
            metrics["items_in_clusters"],
            dedup_s,
            metrics["time_per_1k_s"],
        )
        for c in dedup.largest_clusters(5):
            record = _cluster_record(c, texts, kept_ids, max_titles=3)
            log.info(
                "    %d (%d distinct): %s",
                record["size"],
                record["distinct_texts"],
                record["titles"],
            )
    return rows, details


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument(
        "--data-dir", default=None, help="folder with the datasets (else SHORTLIST_DATA)"
    )
    parser.add_argument("--seed", type=int, default=1, help="MinHash seed and cluster sampling")
    parser.add_argument("--no-write", action="store_true", help="log only, write no result file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("shortlist.items.text").setLevel(logging.WARNING)

    rows: list[Row] = []
    details: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for name in args.datasets:
        try:
            dataset_rows, details[name] = run_dataset(name, args.data_dir, args.seed)
        except (DatasetNotFoundError, SkipDataset) as err:
            log.warning("skipping %s: %s", name, err)
            skipped[name] = str(err)
            continue
        rows.extend(dataset_rows)
    if not rows:
        log.error("no dataset found; nothing to write")
        sys.exit(1)
    if args.no_write:
        return
    path = write_result(
        "text_dedup",
        rows,
        notes=(
            "CT-LLM cleaning rules at title scale, then exact + MinHash-LSH near-duplicates "
            "(128 permutations, exact Jaccard >= 0.7) on the kept titles; CPU only."
        ),
        extra={"details": _without_texts(details), "skipped": skipped}
        if skipped
        else {"details": _without_texts(details)},
        rebuild=False,
    )
    log.info("wrote %s", path)


if __name__ == "__main__":
    main()
