"""Semantic IDs from item text, alone or fused with behaviour: codebook utilisation, collisions,
reconstruction error, fit time.

For each dataset, two inputs are quantized:

- ``text->tfidf-svd-256``: item text (title, brand, category path, description where present) ->
  TfidfSvdEncoder (256 dims).
- ``text+behaviour``: the same text embedding fused (shortlist.items.behaviour.fuse_with_behaviour)
  with a behaviour embedding, the rank-32 SVD of the PPMI of item co-occurrence between
  consecutive events of the *training* sequences (TIGER leave-one-out: every user's last two
  events are left out), behaviour block weight 2.5. QARM's point (PAPERS.md section 3): codes
  should follow behaviour, so items with the same text but different buyers separate.

Each input goes through each quantizer at 3 levels x 256 codes (parallel: 3 sub-codebooks x 256)
-> SemanticIds metrics. QARM's nearest-items code (k = 25) is reported separately: how much of
the pool its codes use, and how many items share their neighbour set.

Target (the issue): 3 x 256 codes with at least 90% of the codes used at every level and under 5%
of the items colliding before any de-duplication. ``meets_target`` says which rows do. Rows whose
last level is forced unique ("unique-last-level") de-duplicate inside the last level, so they
never meet the target: their collision rate is reported as ``collision_ratio_after_dedup`` and
their ``meets_target`` is false.

    python benchmarks/semantic_ids.py --threads 1                  # both datasets, writes the result
    python benchmarks/semantic_ids.py --datasets amazon-beauty --inputs text+behaviour --no-write

The trained quantizers (RQ-VAE, parallel) are fitted once per input; their assignment constraints
act only in ``encode``, so their plain and constrained rows share a fit (and its time). Residual
k-means applies its constraints while fitting, so each of its variants is a separate fit.
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

log = logging.getLogger("benchmarks.semantic_ids")

UTILISATION_TARGET = 0.90
COLLISION_TARGET = 0.05


def code_metrics(
    q: Any, codes: np.ndarray, X: np.ndarray, fit_s: float, *, forced_unique: bool = False
) -> dict[str, Any]:
    """SemanticIds metrics of ``codes``; ``forced_unique``: the last level was de-duplicated, so
    the collision rate is an after-de-duplication figure and the row cannot meet the target."""
    from shortlist.items.semantic_ids import SemanticIds

    m = SemanticIds.from_codes(codes, codebook_size=q.codebook_size).metrics(q, X)
    out: dict[str, Any] = {}
    for level, u in enumerate(m.utilisation, 1):
        out[f"utilisation_l{level}_ratio"] = u
    out["collision_ratio_after_dedup" if forced_unique else "collision_ratio"] = m.collision_rate
    out["max_items_per_code"] = m.max_items_per_code
    out["unique_codes"] = m.n_unique_codes
    for level, h in enumerate(m.entropy_bits, 1):
        out[f"entropy_l{level}_bits"] = round(h, 3)
    out["reconstruction_error_ratio"] = m.relative_reconstruction_error
    out["fit_s"] = fit_s
    out["last_level_forced_unique"] = forced_unique
    out["meets_target"] = bool(
        not forced_unique
        and min(m.utilisation) >= UTILISATION_TARGET
        and m.collision_rate < COLLISION_TARGET
    )
    return out


def timed_fit(q: Any, X: np.ndarray) -> float:
    start = time.perf_counter()
    q.fit(X)
    return time.perf_counter() - start


def near_duplicate_ratio(X: np.ndarray) -> float:
    """Items whose closest other item has cosine > 0.99 (rows of X are unit vectors)."""
    import faiss

    index = faiss.IndexFlatIP(X.shape[1])
    index.add(np.ascontiguousarray(X))
    nearest_other = index.search(np.ascontiguousarray(X), 2)[0][:, 1]
    return float((nearest_other > 0.99).mean())


def embeddings(name: str, args: argparse.Namespace) -> tuple[list[Row], dict[str, np.ndarray]]:
    """The quantizer inputs of one dataset (protocol -> (N, D) unit rows) and their rows."""
    from shortlist.data.datasets import load_dataset
    from shortlist.data.splits import tiger_split
    from shortlist.items.behaviour import BehaviourConfig, CooccurrenceSVD, fuse_with_behaviour
    from shortlist.items.encoders import TfidfSvdEncoder, item_texts

    data = load_dataset(name, data_dir=args.data_dir)
    texts = item_texts(data)
    text_protocol = f"text->tfidf-svd-{args.dim}"
    start = time.perf_counter()
    encoder = TfidfSvdEncoder(dim=args.dim).fit(texts)
    X = encoder.encode(texts)  # (N, D)
    encode_s = time.perf_counter() - start
    # near-duplicate items bound how far any quantizer can separate items by content alone
    rows = [
        Row(
            dataset=name,
            protocol=text_protocol,
            model="tfidf-svd",
            variant=f"dim={args.dim}",
            metrics={
                "items": len(texts),
                "explained_variance_ratio": encoder.explained_variance_ratio_,
                "near_duplicate_ratio": near_duplicate_ratio(X),
                "fit_s": encode_s,
            },
        )
    ]
    inputs = {text_protocol: X}
    if "text+behaviour" in args.inputs:
        cfg = BehaviourConfig(
            dim=args.behaviour_dim,
            window=args.behaviour_window,
            weight=args.behaviour_weight,
            seed=args.seed,
        )
        start = time.perf_counter()
        train = tiger_split(data).train  # training events only
        behaviour = CooccurrenceSVD(cfg).fit(train, data.num_items)
        F = fuse_with_behaviour(X, behaviour.embeddings_[1:], cfg.weight)  # (N, D + D_b)
        fuse_s = time.perf_counter() - start
        protocol = "text+behaviour"
        rows.append(
            Row(
                dataset=name,
                protocol=protocol,
                model="tfidf-svd+ppmi-svd",
                variant=f"dim={args.dim}+{cfg.dim}, window={cfg.window}, weight={cfg.weight}",
                metrics={
                    "items": len(texts),
                    "items_with_behaviour_ratio": float(behaviour.has_behaviour_[1:].mean()),
                    "near_duplicate_ratio": near_duplicate_ratio(F),
                    "fit_s": fuse_s,  # behaviour embedding + fusion, the text encoder not counted
                },
            )
        )
        inputs[protocol] = F
    if "text" not in args.inputs:
        del inputs[text_protocol]
    return rows, inputs


def quantize(name: str, protocol: str, X: np.ndarray, args: argparse.Namespace) -> list[Row]:
    from shortlist.items.quantizers import (
        RQVAE,
        NearestItemsCode,
        ParallelSubCodebooks,
        ResidualKMeans,
    )

    rows: list[Row] = []
    L, K = args.levels, args.codebook_size
    wanted = set(args.quantizers)

    def add(
        model: str, variant: str, q: Any, codes: np.ndarray, fit_s: float, forced: bool = False
    ) -> None:
        metrics = code_metrics(q, codes, X, fit_s, forced_unique=forced)
        rows.append(
            Row(dataset=name, protocol=protocol, model=model, variant=variant, metrics=metrics)
        )
        log.info("%s %s %s %s: %s", name, protocol, model, variant, metrics)

    if "rq-kmeans" in wanted:
        for variant, params in (
            ("plain", {}),
            ("balanced", {"balanced": True}),
            ("unique-last-level", {"unique_last_level": True}),
            ("balanced+unique-last-level", {"balanced": True, "unique_last_level": True}),
        ):
            q = ResidualKMeans(L, K, seed=args.seed, **params)
            fit_s = timed_fit(q, X)
            forced = bool(params.get("unique_last_level"))
            add("rq-kmeans", variant, q, q.labels_, fit_s, forced)  # labels_ == encode(X)
    if "rq-vae" in wanted:
        q = RQVAE(L, K, epochs=args.rqvae_epochs, unique_last_level=True, seed=args.seed)
        fit_s = timed_fit(q, X)
        add(
            "rq-vae", f"plain, epochs={args.rqvae_epochs}", q, q.encode(X, constrained=False), fit_s
        )
        add(
            "rq-vae",
            f"unique-last-level, epochs={args.rqvae_epochs}",
            q,
            q.encode(X),
            fit_s,
            forced=True,
        )
        q.unique_last_level, q.balanced = False, True  # the same fit, balanced encode
        add("rq-vae", f"balanced, epochs={args.rqvae_epochs}", q, q.encode(X), fit_s)
    if "parallel" in wanted:
        q = ParallelSubCodebooks(
            L, K, epochs=args.parallel_epochs, unique_last_level=True, seed=args.seed
        )
        fit_s = timed_fit(q, X)
        variant = f"e={q.code_dim_}, epochs={args.parallel_epochs}"
        add("parallel", f"plain, {variant}", q, q.encode(X, constrained=False), fit_s)
        add("parallel", f"unique-last-level, {variant}", q, q.encode(X), fit_s, forced=True)
    if "nearest-items" in wanted:
        start = time.perf_counter()
        q = NearestItemsCode(k=25).fit(X)
        codes = q.encode(X, ids=np.arange(1, len(X) + 1))
        fit_s = time.perf_counter() - start
        uses = np.bincount(codes.ravel(), minlength=q.codebook_size)
        sets = np.unique(np.sort(codes, axis=1), axis=0, return_inverse=True)[1].reshape(-1)
        shared = np.bincount(sets)[sets] > 1
        metrics = {
            "pool_items": q.codebook_size,
            "pool_utilisation_ratio": float((uses > 0).mean()),
            "max_uses_per_pool_item": int(uses.max()),
            "collision_ratio": float(shared.mean()),
            "reconstruction_error_ratio": float(
                ((X - q.decode(codes)) ** 2).sum() / (X.astype(np.float64) ** 2).sum()
            ),
            "fit_s": fit_s,
        }
        rows.append(
            Row(
                dataset=name,
                protocol=protocol,
                model="nearest-items",
                variant="k=25",
                metrics=metrics,
            )
        )
        log.info("%s %s nearest-items: %s", name, protocol, metrics)
    return rows


def run_dataset(name: str, args: argparse.Namespace) -> list[Row]:
    rows, inputs = embeddings(name, args)
    for protocol, X in inputs.items():
        rows += quantize(name, protocol, X, args)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", default="amazon-beauty,amazon-scientific")
    parser.add_argument(
        "--quantizers",
        default="rq-kmeans,rq-vae,parallel,nearest-items",
        help="comma-separated subset of rq-kmeans, rq-vae, parallel, nearest-items",
    )
    parser.add_argument(
        "--data-dir", default=None, help="folder with the datasets (else SHORTLIST_DATA)"
    )
    parser.add_argument(
        "--inputs",
        default="text,text+behaviour",
        help="comma-separated subset of text, text+behaviour (the embeddings that are quantized)",
    )
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--behaviour-dim", type=int, default=32)
    parser.add_argument("--behaviour-window", type=int, default=1)
    parser.add_argument("--behaviour-weight", type=float, default=2.5)
    parser.add_argument("--levels", type=int, default=3)
    parser.add_argument("--codebook-size", type=int, default=256)
    parser.add_argument("--rqvae-epochs", type=int, default=100)
    parser.add_argument("--parallel-epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=0, help="torch and faiss threads (0 = their default)"
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print the rows, write no result file"
    )
    args = parser.parse_args(argv)
    args.quantizers = [q for q in args.quantizers.split(",") if q]
    args.inputs = [i for i in args.inputs.split(",") if i]
    unknown = set(args.inputs) - {"text", "text+behaviour"}
    if unknown:
        parser.error(f"--inputs: unknown {sorted(unknown)}; valid: text, text+behaviour")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("faiss").setLevel(logging.WARNING)
    if args.threads:
        import faiss
        import torch

        torch.set_num_threads(args.threads)
        faiss.omp_set_num_threads(args.threads)

    rows: list[Row] = []
    for name in args.datasets.split(","):
        rows += run_dataset(name, args)
    if args.no_write:
        for row in rows:
            print(row)
        return
    met = sorted(
        {
            f"{r.dataset}/{r.protocol}/{r.model}/{r.variant}"
            for r in rows
            if r.metrics.get("meets_target")
        }
    )
    notes = (
        f"Target: {args.levels} x {args.codebook_size} codes, >= {UTILISATION_TARGET:.0%} of the codes "
        f"used at every level and < {COLLISION_TARGET:.0%} of items colliding before any "
        f"de-duplication. Rows that meet it: {', '.join(met) or 'none'}. "
        "Rows with last_level_forced_unique (unique-last-level variants) de-duplicate inside the "
        "last level (items that share the first L-1 codes take distinct last codes while their "
        "bucket holds <= K items), so their collision rate is collision_ratio_after_dedup and they "
        "never meet the target. text+behaviour = the text embedding fused with a rank-"
        f"{args.behaviour_dim} PPMI-SVD embedding of item co-occurrence (window "
        f"{args.behaviour_window}) in the TIGER training sequences, behaviour weight "
        f"{args.behaviour_weight} (shortlist.items.behaviour). reconstruction_error_ratio = "
        "sum ||x - decode(code)||^2 / sum ||x||^2 on the L2-normalised quantizer input; "
        "near_duplicate_ratio = items whose closest other item has cosine > 0.99. "
        f"threads={args.threads or 'default'}."
    )
    path = write_result("semantic_ids", rows, notes=notes, rebuild=False)
    print(path)


if __name__ == "__main__":
    main()
