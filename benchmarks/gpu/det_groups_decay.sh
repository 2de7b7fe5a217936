#!/usr/bin/env bash
# Three short measurements, one after another alone on the GPU (about 8 minutes, one call; sixteenth
# session): each result file reaches $OUT as soon as it is written.
# 1. train.deterministic on ML-100k's frozen ELASTIC, off and on, 2 runs each of 3 epochs
#    (benchmarks/determinism.py -> determinism_ml100k_elastic);
# 2. train.length_groups 1, 2, 4 on MovieLens latest-small's frozen ELASTIC and SASRec
#    (benchmarks/length_groups_speed.py -> length_groups_speed_gpu; KSA is left out: its first
#    run, compiling FlexAttention kernels for each new batch length, took this step past its limit);
# 3. the decayed ELASTIC layer at L = 16k with chunks of 64 and of 128, the 128 case with the
#    chunk-level state in two levels and in one (longseq_speed.py --elastic-chunk, --decay-one-level-
#    chunks; compiled as one CUDA graph without autotuning, each with its own plain ELASTIC and SDPA
#    rows) -> longseq_speed_decay_c64, longseq_speed_decay_c128, longseq_speed_decay_c128_onelevel.
# Carry .whl, .gpu/ml-100k.npz and .gpu/ml-latest-small.npz. Set SHORTLIST_COMMIT.
set -u
cd "$(dirname "$0")/../.."
. benchmarks/gpu/lib.sh
gpu_setup > /dev/null 2>&1
mkdir -p runs/results
out() { cp runs/results/*.json runs/*.log "$OUT/" 2>/dev/null; }
timeout 150 python3 benchmarks/determinism.py --config configs/ml-100k/elastic.yaml --split .gpu/ml-100k.npz \
  --epochs 3 --repeats 2 --device cuda --name determinism_ml100k_elastic --no-rebuild > runs/det.log 2>&1 \
  || echo "determinism rc $?"
tail -n 3 runs/det.log; out
timeout 150 python3 benchmarks/length_groups_speed.py --split .gpu/ml-latest-small.npz \
  --configs configs/ml-latest-small/elastic.yaml,configs/ml-latest-small/sasrec.yaml \
  --groups 1,2,4 --steps 100 --device cuda --name length_groups_speed_gpu --no-rebuild > runs/lg.log 2>&1 || echo "length_groups rc $?"
tail -n 4 runs/lg.log; out
for c in "64 64 longseq_speed_decay_c64" "128 64 longseq_speed_decay_c128" "128 128 longseq_speed_decay_c128_onelevel"; do
  set -- $c
  timeout 110 python3 benchmarks/longseq_speed.py --device cuda --methods elastic,elastic-decay,sdpa --lengths 16384 \
    --compile step-graph --compile-lengths 16384 --elastic-chunk "$1" --decay-one-level-chunks "$2" --repeats 20 \
    --name "$3" > "runs/$3.log" 2>&1 || echo "$3 rc $?"
  grep "compile(step-graph)" "runs/$3.log" | cut -c 1-150; out
done
