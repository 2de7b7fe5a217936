#!/usr/bin/env bash
# Issue 4: ELASTIC's and SDPA's compiled 16k step (the whole step as one CUDA graph, longseq_speed.py
# --compile step-graph) with Inductor's GEMM autotuning (max_autotune=True, for both methods alike),
# ELASTIC with dispatcher chunks of ELASTIC_CHUNK (default 64: the fastest with autotuning in
# gpu/speed_autotune.sh's probe), alone on the GPU, about 5 minutes, no carry. Two processes with the
# methods in opposite orders, 20 timed steps each -> benchmarks/results/longseq_speed_16k_autotune_a.json
# and _b.json; $OUT/t.tgz: files + logs. ALL=1 instead times KSA (the tuned FlexAttention tiles of
# benchmarks/results/ksa_flex_tiles*.json), ELASTIC and SDPA in one process with the same setting
# -> longseq_speed_16k_autotune_all.json.
set -u
cd "$(dirname "$0")/../.."
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 SHORTLIST_COMMIT="${SHORTLIST_COMMIT:-unknown}"
mkdir -p runs
S="python3 benchmarks/longseq_speed.py --device cuda --lengths 16384 --compile step-graph
  --compile-lengths 16384 --elastic-chunk ${ELASTIC_CHUNK:-64} --repeats 20 --warmup 3
  --inductor max_autotune=True"
if [ "${ALL:-0}" = 1 ]; then
  TILES=$(python3 benchmarks/ksa_flex_tiles.py --best benchmarks/results/ksa_flex_tiles*.json)
  timeout "${ALL_S:-270}" $S --name longseq_speed_16k_autotune_all --methods ksa,elastic,sdpa \
    --ksa-tiles "$TILES" > runs/t_all.log 2>&1
  echo "all rc $?"; grep "step-graph" runs/t_all.log | cut -c 25-110
  tar czf "$OUT/t.tgz" benchmarks/results/longseq_speed_16k_autotune_all.json runs/t_all.log
  exit 0
fi
for order in a b; do
  methods=elastic,sdpa
  [ "$order" = b ] && methods=sdpa,elastic
  timeout 240 $S --name "longseq_speed_16k_autotune_$order" --methods "$methods" \
    > "runs/t_$order.log" 2>&1
  echo "$order rc $?"; grep "step-graph" "runs/t_$order.log" | cut -c 25-110
  tar czf "$OUT/t.tgz" benchmarks/results/longseq_speed_16k_autotune_*.json runs/t_*.log
done
