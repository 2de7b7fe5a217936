#!/usr/bin/env bash
# Issue 4: the 16k step with the whole step as one CUDA graph (longseq_speed.py --compile
# step-graph), timed again for its run-to-run spread, alone on the GPU, about 90 s; no carry.
# Two processes with the methods in opposite orders (KSA with the tuned FlexAttention tiles of
# benchmarks/results/ksa_flex_tiles*.json, ELASTIC with dispatcher chunks of 128, SDPA), 20 timed
# steps each -> benchmarks/results/longseq_speed_16k_graph_a.json and _b.json. AUTOTUNE=1 adds
# ELASTIC and SDPA with Inductor's max_autotune (GEMM templates that can take pointwise epilogues;
# about 3 minutes of autotuning) -> longseq_speed_16k_graph_autotune.json. $OUT/g.tgz: files + logs.
set -u
cd "$(dirname "$0")/../.."
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 SHORTLIST_COMMIT="${SHORTLIST_COMMIT:-unknown}"
mkdir -p runs
TILES=$(python3 benchmarks/ksa_flex_tiles.py --best benchmarks/results/ksa_flex_tiles*.json)
S="python3 benchmarks/longseq_speed.py --device cuda --lengths 16384 --compile step-graph
  --compile-lengths 16384 --elastic-chunk 128 --repeats 20 --warmup 3"
for order in a b; do
  methods=ksa,elastic,sdpa
  [ "$order" = b ] && methods=sdpa,elastic,ksa
  timeout 150 $S --name "longseq_speed_16k_graph_$order" --methods "$methods" --ksa-tiles "$TILES" \
    > "runs/g_$order.log" 2>&1
  echo "$order rc $?"; grep "step-graph" "runs/g_$order.log" | cut -c 25-110
done
if [ "${AUTOTUNE:-0}" = 1 ]; then
  timeout 225 $S --name longseq_speed_16k_graph_autotune --methods elastic,sdpa \
    --inductor max_autotune=True > runs/g_autotune.log 2>&1
  echo "autotune rc $?"; grep "step-graph" runs/g_autotune.log | cut -c 25-110
fi
tar czf "$OUT/g.tgz" benchmarks/results/longseq_speed_16k_graph_*.json runs/g_*.log
