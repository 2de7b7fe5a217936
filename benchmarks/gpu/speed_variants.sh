#!/usr/bin/env bash
# Issue 4 diagnostics: candidate settings for KSA's and ELASTIC's step at L = 16k, compiled
# (reduce-overhead), each with its own time limit, before the full table
# (benchmarks/gpu/longseq_speed.sh) is re-timed with the winner as the default. About 4 minutes,
# alone on the GPU, no carry. Rows go to runs/variants/*.log; $OUT/variants.tgz is rebuilt after
# each case, so a hung compile costs its own limit only.
#   KSA: FlexAttention blocks of 128 (default) and 64 (aligned with k = 64 chunks; tiles from
#        ops/ksa_flex.flex_kernel_options);
#   ELASTIC: dispatcher chunks of 64, 128 and 256 (fewer, larger batched matmuls: the compiled
#        profile's largest item was many small bmm tiles).
# MODES: the compiled modes timed (default reduce-overhead; step-graph captures the whole step as one
# CUDA graph, longseq_speed.capture_step). ELASTIC_CHUNKS: the chunks (default "64 128 256").
# KSA=0 skips the two KSA cases.
set -u
cd "$(dirname "$0")/../.."
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
mkdir -p runs/variants
S="python3 benchmarks/longseq_speed.py --device cuda --repeats 5 --warmup 3 --lengths 16384 \
  --compile ${MODES:-reduce-overhead} --compile-lengths 16384"
case_() {  # NAME SECONDS ARGS...
  local name=$1 s=$2; shift 2
  timeout "$s" $S --name "variant_$name" "$@" > "runs/variants/$name.log" 2>&1 || echo "$name: rc $?"
  tar czf "$OUT/variants.tgz" runs/variants benchmarks/results/variant_*.json 2>/dev/null
}
case_ sdpa 90 --methods sdpa
if [ "${KSA:-1}" != 0 ]; then
  case_ ksa128 120 --methods ksa --ksa-block 128
  case_ ksa64 120 --methods ksa --ksa-block 64
fi
for c in ${ELASTIC_CHUNKS:-64 128 256}; do case_ "elastic$c" 90 --methods elastic --elastic-chunk "$c"; done
grep -h "L= 16384" runs/variants/*.log | cut -c 1-140
