#!/usr/bin/env bash
# Issue 4: how far Inductor's GEMM autotuning moves ELASTIC's and SDPA's compiled 16k step (the whole
# step as one CUDA graph, longseq_speed.py --compile step-graph), alone on the GPU, about 8 minutes,
# no carry. First a kernel table of ELASTIC's compiled step (compile mode "default": the same kernels
# outside a graph, so the profiler sees each), then one process per Inductor setting (20 timed steps,
# ELASTIC with dispatcher chunks of 128 unless named) -> benchmarks/results/probe_autotune_<case>.json.
# Each case has its own time limit and $OUT/at.tgz is rebuilt after each, so a hung compile costs
# only its own limit.
set -u
cd "$(dirname "$0")/../.."
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 SHORTLIST_COMMIT="${SHORTLIST_COMMIT:-unknown}"
mkdir -p runs/at
pack() { rm -f runs/at/*.trace.json; tar czf "$OUT/at.tgz" runs/at benchmarks/results/probe_autotune_*.json 2>/dev/null; }
timeout 120 python3 benchmarks/longseq_profile.py --device cuda --out runs/at --rows 45 --length 16384 \
  --method elastic --elastic-chunk 128 --compile default > runs/at/prof_elastic.log 2>&1 || echo "prof rc $?"
pack
S="python3 benchmarks/longseq_speed.py --device cuda --lengths 16384 --compile step-graph
  --compile-lengths 16384 --repeats 20 --warmup 3"
case_() {  # NAME SECONDS ARGS...
  local name=$1 s=$2; shift 2
  timeout "$s" $S --name "probe_autotune_$name" "$@" > "runs/at/$name.log" 2>&1 || echo "$name: rc $?"
  echo "== $name"; grep "step-graph" "runs/at/$name.log" | cut -c 25-120
  pack
}
case_ plain 90 --methods elastic,sdpa --elastic-chunk 128
case_ mat 200 --methods elastic,sdpa --elastic-chunk 128 --inductor max_autotune=True
case_ mat_cd 240 --methods elastic --elastic-chunk 128 \
  --inductor max_autotune=True,coordinate_descent_tuning=True
case_ mat_triton 200 --methods elastic --elastic-chunk 128 \
  --inductor "max_autotune=True,max_autotune_gemm_backends='TRITON'"
case_ mat_c64 200 --methods elastic --elastic-chunk 64 --inductor max_autotune=True
