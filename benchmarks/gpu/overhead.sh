#!/usr/bin/env bash
# Issue 4 diagnostics: is a compiled (reduce-overhead) KSA / ELASTIC step at 16k bound by the GPU or
# by the host? torch.profiler tables (self CPU vs self CUDA time) with dynamo's graph-break,
# recompile and perf-hint logs (CUDA-graph skips). Alone on the GPU, no carry. $OUT/overhead.tgz.
set -u
cd "$(dirname "$0")/../.."
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 TORCH_LOGS="perf_hints,graph_breaks,recompiles"
mkdir -p runs/overhead
for m in ${METHODS:-ksa elastic sdpa}; do
  timeout "${CASE_S:-120}" python3 benchmarks/longseq_profile.py --device cuda --out runs/overhead \
    --rows 20 --length 16384 --method "$m" --compile reduce-overhead > "runs/overhead/$m.log" 2>&1 \
    || echo "$m rc $?"
  rm -f runs/overhead/*.trace.json
  tar czf "$OUT/overhead.tgz" runs/overhead
  grep -E "Self (CPU|CUDA) time total|skipping|Graph break|Recompil" "runs/overhead/$m.log" | head -12
done
