"""CTR ranker speed: training rows/s and inference candidates/s for a request of 500 candidates.

For each prepared dataset (``benchmarks/ctr.py prepare``) and each ranker (built from its frozen
config ``configs/<dataset>/<model>.yaml``, read with PyYAML only):

- training: Adam steps on shuffled training batches (``--batch-size``), rows per second after a
  warm-up, on each ``--devices`` entry (``cpu`` uses ``--threads`` torch threads: the issue asks for
  2 cores);
- inference: one request = one user (a test row's user features and history) with 500 candidate
  items drawn from the catalogue; the derived fields (categories, semantic IDs) are looked up per
  request as a server would (:meth:`CTRData.derive`), then ``predict_proba``; candidates per second
  = 500 / request latency (median of ``--requests`` requests), model in eval mode, no autograd.

    python benchmarks/ctr_speed.py --data .gpu/ml-1m-ctr.npz .gpu/amazon-beauty-ctr.npz --devices cpu
    python benchmarks/ctr_speed.py --data ... --devices cuda --merge      # on the GPU: adds its rows

Writes ``benchmarks/results/ctr_speed.json`` (``--merge`` keeps the rows of other devices).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, ROOT, Row, command_line, write_result

log = logging.getLogger("benchmarks.ctr_speed")


def _model(data: Any, dataset: str, name: str) -> Any:
    from shortlist.train.ctr_experiment import build_ranker

    raw = yaml.safe_load((ROOT / "configs" / dataset / f"{name}.yaml").read_text())
    return build_ranker(raw["model"], data)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_rows_per_s(
    model: Any, data: Any, device: torch.device, batch_size: int, steps: int
) -> float:
    from shortlist.data.ctr import CTRLoader

    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = CTRLoader(data, "train", batch_size=batch_size, shuffle=True, drop_last=True)
    batches = iter(loader)
    warmup = 3
    rows, t0 = 0, 0.0
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            t0 = time.perf_counter()
        batch = next(batches).to(device)
        loss = model.compute_loss(batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        rows += batch.num_rows if i >= warmup else 0
    _sync(device)
    return rows / (time.perf_counter() - t0)


def request(data: Any, row: int, candidates: np.ndarray) -> dict[str, torch.Tensor]:
    """A ranking request: the test row's user fields and history, repeated for each candidate."""
    base = data.features("test", np.full(len(candidates), row))
    base["item_id"] = candidates
    data.derive(base)
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in base.items()}


def inference(
    model: Any, data: Any, device: torch.device, n_candidates: int, requests: int
) -> tuple[float, float]:
    """(median request latency in s, candidates per second) for requests of ``n_candidates``."""
    model.to(device).eval()
    rng = np.random.default_rng(0)
    n_items = data.spec.field("item_id").vocab_size - 1
    rows = rng.integers(0, len(data.parts["test"]), requests + 5)
    times = []
    with torch.inference_mode():
        for k, row in enumerate(rows):
            t0 = time.perf_counter()
            feats = request(data, int(row), rng.integers(1, n_items + 1, n_candidates))
            feats = {name: v.to(device, non_blocking=True) for name, v in feats.items()}
            p = model.predict_proba(feats)
            _ = p.cpu()  # the scores are back on the host: the request is done
            if k >= 5:
                times.append(time.perf_counter() - t0)
    latency = statistics.median(times)
    return latency, n_candidates / latency


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from shortlist.data.ctr import CTRData

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", nargs="+", required=True, help="prepared .npz files")
    parser.add_argument("--models", default="can,din,deepfm,dcnv2")
    parser.add_argument("--devices", default="cpu", help="comma-separated: cpu, cuda")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--candidates", type=int, default=500)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--name", default="ctr_speed")
    parser.add_argument("--merge", action="store_true", help="keep existing rows of other devices")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    devices = [torch.device(d) for d in args.devices.split(",")]
    rows: list[Row] = []
    for path in args.data:
        data = CTRData.load(path)
        for name in args.models.split(","):
            for device in devices:
                variant = f"{device.type}" + (
                    f", {args.threads} threads" if device.type == "cpu" else ""
                )
                torch.manual_seed(0)
                model = _model(data, data.name, name)
                train = train_rows_per_s(model, data, device, args.batch_size, args.steps)
                latency, cps = inference(model, data, device, args.candidates, args.requests)
                log.info("%s %s %s: train %.0f rows/s, %d candidates in %.2f ms (%.0f/s)",
                         data.name, name, device, train, args.candidates, latency * 1e3, cps)  # fmt: skip
                rows.append(Row(data.name, f"train, batch {args.batch_size}", name, variant,
                                {"train_rows_per_s": train, "parameters": model.num_parameters()}))  # fmt: skip
                rows.append(Row(data.name, f"inference, request of {args.candidates} candidates",
                                name, variant, {"candidates_per_s": cps, "request_s": latency}))  # fmt: skip
    notes = ""
    if args.merge and (RESULTS / f"{args.name}.json").exists():
        previous = json.loads((RESULTS / f"{args.name}.json").read_text())
        ours = {r.variant for r in rows}
        kept = [Row(**r) for r in previous["rows"] if r["variant"] not in ours]
        rows = kept + rows
        if kept:  # say where the kept rows were measured: this file's machine is this run's
            notes = merged_note(previous, {r.variant for r in kept})
    write_result(args.name, rows, command=command_line(), notes=notes)


def merged_note(previous: dict[str, Any], variants: set[str]) -> str:
    """Where rows kept by ``--merge`` come from (their machine, date, commit and command)."""
    source = previous.get("notes", "") if "Rows with variant" in previous.get("notes", "") else ""
    return source or (
        f"Rows with variant {', '.join(sorted(variants))}: measured on {previous['machine']}, "
        f"{previous['date']}, commit {previous['commit']}: {previous['command']}"
    )


if __name__ == "__main__":
    main()
