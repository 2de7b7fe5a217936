"""Long-sequence attention speed: forward + backward time and peak memory of one attention sublayer.

Five sublayers of the same width are timed at fixed tokens per batch (B = tokens / L), for L in
{512, 2k, 4k, 8k, 16k, 32k, 64k} on the GPU and up to 8k on CPU:

- ``ksa``: Kwai Summary Attention (``shortlist.ops.ksa.KSAAttentionLayer``, fast path: FlexAttention
  over the contiguous [events | summaries] layout on CUDA, the blocked path on CPU), chunk k, window W;
- ``ksa-banded``: the same sublayer with the vectorised banded path (``impl="banded"``: every query
  chunk against its band of W + 1 event chunks and all summaries, masked batched matmuls);
- ``elastic``: causal linear dispatcher attention (``shortlist.ops.dispatcher_layer``), k experts;
  ``elastic-triton`` (opt-in, named in ``--methods``): the same with one Triton kernel per chunk;
  ``elastic-decay`` (opt-in): the same with recency decay in the expert summaries
  (``decay_half_life`` ``--elastic-decay-half-life``, what the frozen ML-100k and MovieLens
  latest-small ELASTIC configs use), its chunk-level state as ``--decay-scan`` says (default
  ``auto``: the Triton scan on CUDA); ``elastic-decay-torch`` (opt-in): the same with that state
  from PyTorch's transitions (``shortlist.ops.dispatcher.DECAY_SCAN = "torch"``), to time the two
  in one run; ``elastic-route`` (opt-in): the same sublayer with each event routed to its top
  ``--elastic-route-topk`` experts (``compress_over="experts"``, what the planted split's ELASTIC
  uses);
- ``sdpa``: full causal attention through ``F.scaled_dot_product_attention`` (flash on the GPU);
- ``naive``: full causal attention with explicit (L, L) scores (``shortlist.ops.attention``).

``--scopes sublayer,op`` adds rows of the attention operation alone (protocol ``fwd+bwd, attention op
only``, at ``--op-lengths``): each sublayer's attention on the per-head tensors its own projections
make (q, k, v; KSA's summary q, k, v; ELASTIC's compress keys, expert streams and expert queries),
detached, so without the projections, RoPE and output projection that the sublayer rows include. The sublayer rows are the table's headline (what
a model pays per layer); the op rows isolate the attention mechanism, whose cost the methods differ
in. Ratios are taken within a scope.

A step is the forward pass and the backward pass from a fixed random output gradient
(``y.backward(dy)``, as attention kernels are usually timed): no loss, whose own kernels and launches
would add the same fixed cost to every method (before 2026-11-29, third session, the step was
``y.float().square().mean().backward()``: about 0.3 ms of GPU time per step at 64k tokens).

Per row: ``fwd_bwd_s`` (median over ``--repeats`` timed steps after warm-up; compilation excluded),
``peak_mib`` (CUDA: peak allocated during a step minus the memory held before it; CPU: peak RSS
growth of a fresh process running that one case), ``tokens_per_s``, and ``speedup_vs_sdpa_ratio``
and ``memory_vs_naive_ratio`` from the same run. A case that runs out of memory is recorded as such.

``--compile MODES`` adds rows ``<method>+compile(<mode>)`` timed in the same run: ``torch.compile``
fuses the small ops around the attention kernel, and ``reduce-overhead`` also replays the step as a
CUDA graph, removing the per-op launch cost that dominates KSA and ELASTIC at these sizes.
``--compile step-graph`` (this script's own mode) compiles in the default mode and captures the
whole step, forward and backward, as one CUDA graph (:func:`capture_step`): what is left is the
GPU's time, without the host work between reduce-overhead's forward and backward graphs.

    python benchmarks/longseq_speed.py --device cuda                      # H200 -> longseq_speed.json
    python benchmarks/longseq_speed.py --device cuda --compile reduce-overhead --compile-lengths 4096,16384
    nice python benchmarks/longseq_speed.py --device cpu --name longseq_speed_cpu --max-len 8192

A run stopped by a time limit before it wrote its file (a detached GPU job whose file the next
call's copy of the tree replaced) keeps its rows in its log: ``--from-log LOG`` with the run's own
options writes the result from the cases the log holds, each row as logged, ``fwd_bwd_s`` recomputed
from the logged ``tokens_per_s`` (the log rounds seconds to 0.1 ms), and says so in the notes.
"""

from __future__ import annotations

import argparse
import ast
import json
import logging
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Row, write_result
from shortlist.ops import dispatcher
from shortlist.ops.ksa import FLEX_SPAN

log = logging.getLogger("benchmarks.longseq_speed")

LENGTHS = [512, 2048, 4096, 8192, 16384, 32768, 65536]
METHODS = ["ksa", "ksa-banded", "elastic", "sdpa", "naive"]
STEP_GRAPH = "step-graph"  # a --compile mode of this script: compile "default" + one CUDA graph
# modes with CUDA graphs: they allocate from a private pool before the timed step (no peak_mib)
GRAPH_MODES = ("reduce-overhead", "max-autotune", STEP_GRAPH)
# timed only when named in --methods (elastic-triton: CUDA, ops/dispatcher_triton.py)
OPT_IN = ["elastic-triton", "elastic-decay", "elastic-decay-torch", "elastic-route"]
DECAYED = ("elastic-decay", "elastic-decay-torch")


def build_layer(method: str, args: argparse.Namespace) -> torch.nn.Module:
    from shortlist.ops.attention import FullAttentionLayer
    from shortlist.ops.dispatcher_layer import DispatcherAttentionLayer
    from shortlist.ops.ksa import KSAAttentionLayer

    if method in ("ksa", "ksa-banded"):
        return KSAAttentionLayer(
            args.dim, args.heads, chunk=args.chunk, window=args.window,
            impl="banded" if method == "ksa-banded" else "fast",
            flex_block=args.ksa_block,
            flex_span=args.ksa_span,
            flex_tiles=args.ksa_tiles,
        )  # fmt: skip
    if method in ("elastic", "elastic-triton", "elastic-route", *DECAYED):
        routed = method == "elastic-route"
        return DispatcherAttentionLayer(
            args.dim, args.heads, num_experts=args.experts,
            chunk=args.elastic_triton_chunk if method == "elastic-triton"
            else args.elastic_chunk,
            impl="triton" if method == "elastic-triton" else "fast",
            decay_half_life=args.elastic_decay_half_life if method in DECAYED else 0.0,
            compress_over="experts" if routed else "events",
            route_topk=args.elastic_route_topk if routed else 0,
        )  # fmt: skip
    return FullAttentionLayer(args.dim, args.heads, impl=method)  # type: ignore[arg-type]


def build_op(
    method: str, args: argparse.Namespace, B: int, L: int, device: torch.device, dtype: torch.dtype
) -> tuple[Callable[..., tuple[torch.Tensor, ...]], list[torch.Tensor]]:
    """The attention operation of ``method``'s sublayer alone, and its inputs.

    Every sublayer exposes ``attention_inputs`` (what its own projections hand its attention, same
    shapes, scales and memory layout) and ``attend`` (the attention alone, the layer's settings).
    The inputs are made for a random (B, L, D) input, then detached as leaves that require grad.
    Returns ``(layer.attend, inputs)``; ``attend(*inputs)`` is a tuple of outputs: KSA's events and
    summaries (B, H, L, dh), (B, H, ceil(L / k), dh); ELASTIC's and full attention's (B, H, L, dh).
    """
    from shortlist.ops.ksa import KSAAttentionLayer, num_chunks

    layer = build_layer(method, args).to(device=device, dtype=dtype)
    x = torch.randn(B, L, args.dim, device=device, dtype=dtype)
    extra: list[torch.Tensor] = []
    if isinstance(layer, KSAAttentionLayer):  # the summary stream the sublayer's forward feeds
        extra = [x.new_zeros(B, num_chunks(L, layer.chunk), args.dim)]
    with torch.no_grad():
        made = layer.attention_inputs(x, *extra)
    return layer.attend, [t.detach().requires_grad_(True) for t in made]


def add_sublayer_args(p: argparse.ArgumentParser, tiles: bool = True) -> None:
    """The sublayer's width and the KSA / ELASTIC settings, shared by the speed scripts
    (``longseq_profile.py``, ``ksa_flex_tiles.py``): ``--dim --heads --chunk --window --ksa-block
    --ksa-span [--ksa-tiles] --experts --elastic-chunk``."""
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--chunk", type=int, default=64, help="KSA k: events per chunk")
    p.add_argument("--window", type=int, default=4, help="KSA W: previous chunks seen in full")
    p.add_argument("--ksa-block", type=int, default=128, help="KSA FlexAttention block size")
    p.add_argument(
        "--ksa-span", type=int, default=FLEX_SPAN, help="KSA FlexAttention queries per summary copy"
    )
    if tiles:
        p.add_argument(
            "--ksa-tiles",
            default="",
            help="KSA FlexAttention Triton tiles, 'key=value,...' (shortlist.ops.ksa."
            "parse_flex_tiles; '' = Inductor's defaults; benchmarks/ksa_flex_tiles.py compares them)",
        )
    p.add_argument("--experts", type=int, default=16, help="ELASTIC k: interest experts")
    p.add_argument("--elastic-chunk", type=int, default=64, help="ELASTIC dispatcher chunk C")
    p.add_argument(
        "--elastic-triton-chunk",
        type=int,
        default=32,
        help="C of the opt-in elastic-triton method (shared memory per program grows with C: "
        "benchmarks/triton_dispatch_resources.py; 32 timed faster than 64 at 16k on the H200, "
        "longseq_speed_triton_c32.json and _c64.json)",
    )
    p.add_argument(
        "--elastic-decay-half-life",
        type=float,
        default=256.0,
        help="decay_half_life of the opt-in elastic-decay method (the experts' longest initial "
        "half-life, in events)",
    )
    p.add_argument(
        "--elastic-route-topk",
        type=int,
        default=2,
        help="route_topk of the opt-in elastic-route method: each event routed to its top r "
        "experts (compress_over='experts'; 2 as the planted split's chosen ELASTIC)",
    )
    p.add_argument(
        "--decay-scan",
        choices=dispatcher.DECAY_SCANS,
        default=dispatcher.DECAY_SCAN,
        help="elastic-decay: how the chunk-level decayed state is computed "
        "(shortlist.ops.dispatcher.DECAY_SCAN: 'auto' = the Triton scan on CUDA, 'torch' = "
        "PyTorch's transitions, 'triton' = the scan)",
    )


def set_inductor(spec: str) -> dict[str, Any]:
    """Apply ``"name=value,..."`` to ``torch._inductor.config`` (values as Python literals) and
    return what was set; unknown names raise ValueError naming them."""
    import ast

    import torch._inductor.config as inductor_config

    settings: dict[str, Any] = {}
    for part in (s.strip() for s in spec.split(",") if s.strip()):
        name, eq, value = part.partition("=")
        if not eq or not hasattr(inductor_config, name.strip()):
            raise ValueError(
                f"--inductor: {part!r} is not name=value with a torch._inductor.config name."
            )
        try:
            settings[name.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            raise ValueError(
                f"--inductor: the value of {part!r} is not a Python literal."
            ) from None
    for name, value in settings.items():
        setattr(inductor_config, name, value)
    return settings


def make_step(
    method: str, L: int, args: argparse.Namespace, mode: str = "eager", scope: str = "sublayer"
) -> tuple[Callable[[], None], int]:
    """One forward + backward of one sublayer on (B, L, D) input (or of the attention op alone,
    with ``scope="op"``: :func:`build_op`), and B. The backward starts from fixed random output
    gradients (no loss). ``mode``: ``eager``, or a ``torch.compile`` mode (``default``,
    ``reduce-overhead`` = with CUDA graphs) that fuses the many small ops around the attention
    kernel (one graph per shape). Shared by ``longseq_profile.py``."""
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    B = max(1, args.tokens // L)
    torch.manual_seed(0)
    # read when the step runs (eager) or is traced (compiled): it holds until the next make_step
    dispatcher.DECAY_SCAN = "torch" if method == "elastic-decay-torch" else args.decay_scan
    if scope == "op":
        fn, inputs = build_op(method, args, B, L, device, dtype)
        params: list[torch.Tensor] = []
    else:
        layer = build_layer(method, args).to(device=device, dtype=dtype)
        inputs = [torch.randn(B, L, args.dim, device=device, dtype=dtype, requires_grad=True)]
        params = list(layer.parameters())

        def fn(*t: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return (layer(*t),)

    if mode == STEP_GRAPH and device.type != "cuda":
        raise ValueError(
            f"--compile {STEP_GRAPH} captures the whole step in a CUDA graph: it needs --device "
            f"cuda (got {args.device!r})."
        )
    if mode != "eager":
        fn = torch.compile(fn, mode="default" if mode == STEP_GRAPH else mode, dynamic=False)
    grads: list[torch.Tensor] = []  # the output gradients: fixed, random, made at the first step

    def step() -> None:
        outputs = list(fn(*inputs))
        if not grads:
            grads.extend(torch.randn_like(y, requires_grad=False) for y in outputs)
        torch.autograd.backward(outputs, grads)
        for t in (*inputs, *params):
            t.grad = None

    if mode == STEP_GRAPH:
        return capture_step(step, args.warmup), B
    return step, B


def capture_step(step: Callable[[], None], warmup: int) -> Callable[[], None]:
    """``step`` (forward and backward) captured as one CUDA graph; returns its replay.

    ``reduce-overhead`` replays the forward and the backward as two CUDA graphs, with the autograd
    engine and the graph trees' bookkeeping on the host between them: at 16k a KSA or ELASTIC step
    has about 1.5 ms of GPU work (``longseq_profile_16k.json``, 2026-11-30) and the host, not the GPU,
    then sets the pace. One graph for the whole step, as whole-iteration capture is used in
    training, leaves the GPU's own time; SDPA's step, GPU-bound, is timed the same way. The
    warm-up (compilation, autotuning, first allocations) runs on a side stream, as capture needs.
    """
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(max(1, warmup)):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph.replay


def time_case(
    method: str, L: int, args: argparse.Namespace, mode: str = "eager", scope: str = "sublayer"
) -> dict[str, Any]:
    """:func:`make_step`'s step timed: median seconds over ``--repeats`` and peak memory."""
    device = torch.device(args.device)
    step, B = make_step(method, L, args, mode, scope)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        t0 = time.perf_counter()
        for _ in range(args.warmup):  # includes compilation (FlexAttention) and autotuning
            step()
        sync()
        warm_s = time.perf_counter() - t0
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
        times = []
        for _ in range(args.repeats):
            sync()
            t = time.perf_counter()
            step()
            sync()
            times.append(time.perf_counter() - t)
        if device.type == "cuda":
            peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss0
    except torch.OutOfMemoryError:
        return {"oom": True, "batch": B}
    seconds = statistics.median(times)
    return {
        "batch": B,
        "fwd_bwd_s": seconds,
        "peak_mib": peak,
        "tokens_per_s": B * L / seconds,
        "warmup_s": warm_s,
    }


def _case_in_subprocess(
    method: str, L: int, args: argparse.Namespace, mode: str, scope: str
) -> dict[str, Any]:
    """CPU: one case per fresh process, so the peak RSS belongs to that case alone."""
    cmd = [sys.executable, __file__, "--case", f"{method}:{L}:{mode}:{scope}", *args.passthrough]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.case_timeout)
    if out.returncode != 0:
        log.warning("%s L=%d failed: %s", method, L, out.stderr.strip().splitlines()[-1:])
        return {"failed": True}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _label(method: str, mode: str) -> str:
    return (
        method
        if mode == "eager"
        else f"{method}+compile" + ("" if mode == "default" else f"({mode})")
    )


PROTOCOLS = {"sublayer": "fwd+bwd, one sublayer", "op": "fwd+bwd, attention op only"}


def _row_message(scope: str, method: str, mode: str, L: int, res: dict[str, Any]) -> str:
    """One timed case as the log shows it (and :func:`results_from_log` reads it back)."""
    shown = {k: round(v, 4) for k, v in res.items()}
    return f"{scope:<8s} {_label(method, mode):<22s} L={L:6d} {shown}"


_LOG_ROW = re.compile(r"^\S+ \S+ (sublayer|op) +(\S+) +L= *(\d+) (\{.*\})$")


def _parse_label(label: str) -> tuple[str, str]:
    """Inverse of :func:`_label`: "ksa+compile(step-graph)" -> ("ksa", "step-graph")."""
    method, plus, rest = label.partition("+compile")
    if not plus:
        return method, "eager"
    return method, rest.strip("()") or "default"


def results_from_log(path: Path) -> dict[tuple[str, str, str, int], dict[str, Any]]:
    """The cases a run's log holds (its ``log.info`` row lines), keyed as in :func:`main`;
    ``fwd_bwd_s`` is ``batch * L / tokens_per_s`` (the log rounds it to 4 decimals). ValueError
    naming the file when it holds no row."""
    results: dict[tuple[str, str, str, int], dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        match = _LOG_ROW.match(line.strip())
        if not match:
            continue
        scope, label, length, body = match.groups()
        L = int(length)
        res = ast.literal_eval(body)
        if res.get("tokens_per_s"):
            res["fwd_bwd_s"] = res["batch"] * L / res["tokens_per_s"]
        method, mode = _parse_label(label)
        results[(scope, method, mode, L)] = res
    if not results:
        raise ValueError(
            f"--from-log {path}: no timed case in it (lines 'SCOPE METHOD L= N {{...}}')."
        )
    return results


def _write(
    args: argparse.Namespace,
    results: dict[tuple[str, str, str, int], dict[str, Any]],
    note: str = "",
) -> None:
    """Rows so far, with the ratios measured in this run (rewritten after every length).

    ``speedup_vs_sdpa_ratio`` is against the fastest SDPA row of that length and scope (eager or
    compiled), ``memory_vs_naive_ratio`` against eager naive attention of that scope.
    """
    rows = []
    for (scope, method, mode, L), res in results.items():
        metrics = {
            k: float(v)
            for k, v in res.items()
            if k in ("fwd_bwd_s", "peak_mib", "tokens_per_s", "warmup_s", "batch")
        }
        if mode in GRAPH_MODES:  # no comparable peak
            metrics.pop("peak_mib", None)
        if res.get("oom"):
            metrics["oom"] = 1.0
        if res.get("failed"):
            metrics["failed"] = 1.0
        sdpa = [
            r["fwd_bwd_s"]
            for (sc, m, _, n), r in results.items()
            if sc == scope and m == "sdpa" and n == L and "fwd_bwd_s" in r
        ]
        naive = results.get((scope, "naive", "eager", L), {})
        if "fwd_bwd_s" in res and sdpa:
            metrics["speedup_vs_sdpa_ratio"] = min(sdpa) / res["fwd_bwd_s"]
        if "peak_mib" in metrics and naive.get("peak_mib"):
            metrics["memory_vs_naive_ratio"] = res["peak_mib"] / naive["peak_mib"]
        rows.append(
            Row(
                dataset="synthetic",
                protocol=PROTOCOLS[scope],
                model=_label(method, mode),
                variant=f"L={L}",
                metrics=metrics,
            )
        )
    keys = (
        "device",
        "tokens",
        "dim",
        "heads",
        "chunk",
        "window",
        "ksa_block",
        "ksa_span",
        "ksa_tiles",
        "experts",
        "elastic_chunk",
        "elastic_triton_chunk",
        "elastic_decay_half_life",
        "decay_one_level_chunks",
        "decay_scan",
    )
    config = {
        k: getattr(args, k)
        for k in (
            *keys,
            "warmup",
            "repeats",
            "threads",
            "compile",
            "scopes",
            "op_lengths",
            "inductor",
        )
    }
    write_result(
        args.name,
        rows,
        notes=f"dtype {'bf16' if args.device.startswith('cuda') else 'fp32'}; {config}. A step is"
        " the forward and the backward from fixed random output gradients (no loss)."
        + (
            " Rows +compile(reduce-overhead) and +compile(step-graph) have no peak_mib: CUDA"
            " graphs allocate from a private pool before the timed step."
            if set(GRAPH_MODES) & set(args.compile.split(","))
            else ""
        )
        + (f" {note}" if note else ""),
        extra={"config": config},
        rebuild=False,
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--name", default="longseq_speed")
    p.add_argument("--max-len", type=int, default=65536)
    p.add_argument(
        "--lengths",
        default="",
        help=f"comma-separated lengths to time instead of {LENGTHS} (up to --max-len)",
    )
    p.add_argument(
        "--methods",
        default=",".join(METHODS),
        help=f"comma-separated subset of {METHODS} (a variant's quick look; the table times all)",
    )
    p.add_argument(
        "--tokens", type=int, default=0, help="tokens per batch (0: 65,536 GPU, 8,192 CPU)"
    )
    add_sublayer_args(p)
    p.add_argument(
        "--decay-one-level-chunks",
        type=int,
        default=dispatcher.DECAY_ONE_LEVEL_CHUNKS,
        help="elastic-decay: the chunk-level decayed state is one (n, n) transition up to this "
        "many chunks, two levels beyond (shortlist.ops.dispatcher.DECAY_ONE_LEVEL_CHUNKS, set for "
        "the run: at L = 16k and C = 64, n = 256)",
    )
    p.add_argument("--naive-max-len", type=int, default=16384, help="longest L for naive attention")
    p.add_argument(
        "--compile",
        default="",
        help="comma-separated torch.compile modes timed besides eager, e.g. "
        "'default,reduce-overhead' (rows named <method>+compile[(mode)]), or 'step-graph': "
        "compiled (default mode) and the whole forward + backward captured as one CUDA graph",
    )
    p.add_argument(
        "--compile-lengths",
        default="",
        help="comma-separated lengths at which the compiled modes run (default: every length)",
    )
    p.add_argument(
        "--scopes",
        default="sublayer",
        help="comma-separated: 'sublayer' (projections + attention + output projection) and/or "
        "'op' (the attention operation alone, rows with protocol 'fwd+bwd, attention op only')",
    )
    p.add_argument(
        "--op-lengths",
        default="",
        help="comma-separated lengths at which the 'op' scope runs (default: every length)",
    )
    p.add_argument(
        "--inductor",
        default="",
        help="comma-separated torch._inductor.config settings for the compiled rows, e.g. "
        "'coordinate_descent_tuning=True' (values parsed as Python literals)",
    )
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--case-timeout", type=int, default=900)
    p.add_argument(
        "--from-log",
        help="write the result from this log of a run with the same options, which was stopped "
        "before it wrote its file (see the module docstring); times nothing",
    )
    p.add_argument("--case", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    if args.decay_one_level_chunks < 0:
        p.error(f"--decay-one-level-chunks must be >= 0, got {args.decay_one_level_chunks}.")
    dispatcher.DECAY_ONE_LEVEL_CHUNKS = args.decay_one_level_chunks
    if not args.tokens:
        args.tokens = 65536 if args.device.startswith("cuda") else 8192
    if args.from_log:
        results = results_from_log(Path(args.from_log))
        done = sorted({L for (_, _, _, L) in results})
        _write(
            args,
            results,
            note=f"Written from the log of the run ({Path(args.from_log).name}, --from-log): it was"
            f" stopped before its end, so the rows are the {len(results)} cases it finished (lengths"
            f" {done}); fwd_bwd_s is batch x L / the logged tokens_per_s.",
        )
        return
    set_inductor(args.inductor)
    if args.case:  # a CPU child: one case, JSON on stdout
        method, L, mode, scope = args.case.split(":")
        print(json.dumps(time_case(method, int(L), args, mode, scope)))
        return
    modes = ["eager", *[m for m in args.compile.split(",") if m]]
    compile_lengths = {int(n) for n in args.compile_lengths.split(",") if n}
    args.passthrough = list(argv if argv is not None else sys.argv[1:])
    try:
        chosen = [int(n) for n in args.lengths.split(",") if n] or LENGTHS
    except ValueError:
        raise ValueError(
            f"--lengths must be comma-separated integers, got {args.lengths!r}."
        ) from None
    lengths = [n for n in chosen if n <= args.max_len]
    methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(methods) - set(METHODS) - set(OPT_IN))
    if unknown:
        raise ValueError(f"--methods: unknown {unknown}; choose among {METHODS + OPT_IN}.")
    scopes = [sc for sc in args.scopes.split(",") if sc]
    if not scopes or set(scopes) - set(PROTOCOLS):
        raise ValueError(f"--scopes: choose among {sorted(PROTOCOLS)}, got {args.scopes!r}.")
    op_lengths = {int(n) for n in args.op_lengths.split(",") if n}
    results: dict[tuple[str, str, str, int], dict[str, Any]] = {}
    for L in lengths:
        for scope in scopes:
            if scope == "op" and op_lengths and L not in op_lengths:
                continue
            for mode in modes:
                for method in methods:
                    if method == "naive" and (args.naive_max_len < L or mode != "eager"):
                        continue
                    if mode != "eager" and compile_lengths and L not in compile_lengths:
                        continue
                    if args.device == "cpu":
                        res = _case_in_subprocess(method, L, args, mode, scope)
                    else:
                        try:
                            res = time_case(method, L, args, mode, scope)
                        except Exception as err:  # a compile failure is a row, not a lost run
                            log.warning("%s %s %s L=%d failed: %s", scope, method, mode, L, err)
                            res = {"failed": True}
                        torch.cuda.empty_cache()
                    results[(scope, method, mode, L)] = res
                    log.info("%s", _row_message(scope, method, mode, L, res))
        _write(args, results)


if __name__ == "__main__":
    main()
