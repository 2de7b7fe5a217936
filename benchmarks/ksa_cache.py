"""KSA incremental inference: KV-cache size and per-event update time vs full attention.

For n in {10^3, 10^4, 10^5} history events of one user, three encoders of the same size (4 layers,
width 64, 2 heads, k = 8, W = 16 chunks by default) are compared:

- ``ksa``: every layer KSA; ``ksa-hybrid``: 3 KSA : 1 full (KSA's released ratio, ``full_every=4``);
- ``full``: every layer full causal attention (a plain full-attention KV cache; same code path).

Per row: cache entries (cached tokens summed over layers, each one key and one value per head) and
MiB; for the KSA layers, entries per layer ((W + 1) * k ring slots + n // k summaries) and
``cache_ratio`` = n / that (tends to k); ``update_s``: seconds per new event through
``KSACache.append`` (averaged over ``--updates`` events, crossing chunk boundaries, so summary
updates are included); ``recompute_s``: one full forward over the n + 1 events (what a model
without a cache pays per new event; skipped above ``--recompute-max``).

The cache is put in the state of n events by ``KSACache.fill_random_`` (random keys and values):
neither size nor update cost depends on the values, and a real prefill of 10^5 events through the
full-attention model would dominate a CPU run. Parity of the cache with a full recompute is tested
in tests/test_ksa_model.py.

    nice python benchmarks/ksa_cache.py                     # 2-core CPU, recompute up to 10^4
    python benchmarks/ksa_cache.py --device cuda --name ksa_cache_gpu   # H200, recompute up to 10^5
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Row, write_result
from shortlist.models import build_model
from shortlist.models.ksa import KSA
from shortlist.models.ksa_cache import KSACache

log = logging.getLogger("benchmarks.ksa_cache")

VARIANTS = {"ksa": 0, "ksa-hybrid": 4, "full": 1}  # name -> full_every


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _model(args: argparse.Namespace, full_every: int, device: torch.device) -> KSA:
    torch.manual_seed(0)
    model = build_model(
        "ksa",
        num_items=args.items,
        dim=args.dim,
        num_heads=args.heads,
        num_layers=args.layers,
        chunk_size=args.chunk,
        window=args.window,
        full_every=full_every,
        dropout=0.0,
    )
    assert isinstance(model, KSA)
    return model.to(device=device, dtype=getattr(torch, args.dtype)).eval()


def _update_time(model: KSA, n: int, updates: int, device: torch.device) -> tuple[float, KSACache]:
    """Seconds per appended event on a cache holding n events (after 4 warm-up events)."""
    cache = KSACache(model, batch_size=1)
    cache.fill_random_(n, torch.Generator().manual_seed(n))
    entries = (cache.entries(), cache.nbytes(), cache.entries_per_layer())
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(1, model.config.num_items + 1, (1, updates + 4), generator=gen).to(device)
    cache.append(ids[:, :4])
    _sync(device)
    start = time.perf_counter()
    for j in range(4, updates + 4):
        cache.append(ids[:, j : j + 1])
    _sync(device)
    per_event = (time.perf_counter() - start) / updates
    # report the size at n events (the appended ones only add a few entries)
    fresh = KSACache(model, batch_size=1)
    fresh.fill_random_(n)
    assert fresh.entries() == entries[0]
    return per_event, fresh


@torch.no_grad()
def _recompute_time(model: KSA, n: int, repeats: int, device: torch.device) -> float:
    """Seconds of one full forward over n + 1 events (the cost of a new event without a cache)."""
    ids = torch.randint(1, model.config.num_items + 1, (1, n + 1)).to(device)
    model.encode(ids)  # warm-up (and FlexAttention compilation on CUDA)
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        model.encode(ids)
    _sync(device)
    return (time.perf_counter() - start) / repeats


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--lengths", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--chunk", type=int, default=8)
    p.add_argument("--window", type=int, default=16)
    p.add_argument("--items", type=int, default=10_000)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--updates", type=int, default=64, help="events appended per timing")
    p.add_argument(
        "--recompute-max", type=int, default=None, help="default 10^4 on CPU, 10^5 on CUDA"
    )
    p.add_argument("--repeats", type=int, default=2, help="full recomputes per timing")
    p.add_argument(
        "--threads", type=int, default=1, help="CPU threads (1: per-event ops are latency bound)"
    )
    p.add_argument("--name", default="ksa_cache")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    recompute_max = args.recompute_max or (100_000 if device.type == "cuda" else 10_000)

    rows: list[Row] = []
    for n in args.lengths:
        full_entries, full_update = None, None
        for name in ("full", "ksa-hybrid", "ksa"):
            model = _model(args, VARIANTS[name], device)
            update_s, cache = _update_time(model, n, args.updates, device)
            metrics: dict[str, float] = {
                "events": n,
                "cache_entries": cache.entries(),
                "cache_mib": cache.nbytes() / 2**20,
                "update_s": update_s,
            }
            per_layer = cache.entries_per_layer()
            ksa_layers = [e for e, b in zip(per_layer, model.blocks, strict=True) if not b.full]
            if ksa_layers:
                metrics["summary_layer_entries"] = ksa_layers[0]
                metrics["cache_ratio"] = n / ksa_layers[0]  # vs a full layer's n entries
            if full_entries is None:
                full_entries, full_update = cache.entries(), update_s
            else:
                metrics["cache_vs_full_ratio"] = full_entries / cache.entries()
                metrics["update_speedup_vs_full_cache_ratio"] = full_update / update_s
            if n <= recompute_max:
                recompute_s = _recompute_time(model, n, args.repeats, device)
                metrics["recompute_s"] = recompute_s
                metrics["recompute_vs_update_ratio"] = recompute_s / update_s
            log.info("n=%d %s %s", n, name, {k: round(v, 6) for k, v in metrics.items()})
            rows.append(Row(dataset="synthetic", model=name, variant=f"n={n}", metrics=metrics))
            del model, cache
            if device.type == "cuda":
                torch.cuda.empty_cache()

    notes = (
        f"{args.layers} layers, dim {args.dim}, {args.heads} heads, k={args.chunk}, W={args.window} "
        f"chunks, {args.dtype}, batch 1, device {args.device}; cache entries = cached tokens over all "
        "layers (K and V per head); cache_ratio = n / entries of one KSA layer (-> k); update_s = "
        "per-event KSACache.append; recompute_s = one full forward over n + 1 events (absent above "
        f"{recompute_max}); caches filled with random K/V (size and cost do not depend on values)."
    )
    path = write_result(args.name, rows, notes=notes)
    log.info("wrote %s", path)


if __name__ == "__main__":
    main()
