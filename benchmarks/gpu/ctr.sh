#!/usr/bin/env bash
# Issue 6 on the GPU, one short call: ranker speed on the H200 (added to ctr_speed.json's CPU rows),
# then the Amazon Beauty behaviour-CTR models x 5 seeds as parallel processes, each with a training
# time limit. Carry .gpu/ml-1m-ctr.npz, .gpu/amazon-beauty-ctr.npz and .gpu/amazon-beauty-ctr-semantic_ids
# (benchmarks/ctr.py prepare). Results are copied to $OUT.
set -u
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1 SHORTLIST_COMMIT="${SHORTLIST_COMMIT:-unknown}" OMP_NUM_THREADS=1 PYTHONPATH=$PWD/src
mkdir -p runs
timeout "${SPEED_S:-80}" python3 benchmarks/ctr_speed.py --data .gpu/ml-1m-ctr.npz .gpu/amazon-beauty-ctr.npz \
  --devices cuda --merge > runs/ctr_speed.log 2>&1
tail -n 12 runs/ctr_speed.log; cp benchmarks/results/ctr_speed.json "$OUT/"
timeout "${QUALITY_S:-110}" python3 benchmarks/ctr.py run --name ctr_beauty --dataset amazon-beauty-ctr \
  --data .gpu/amazon-beauty-ctr.npz --models can,can-sid,din,deepfm,dcnv2 --seeds 0,1,2,3,4 --parallel 25 \
  --device cuda --out-dir runs/ctr --set train.threads=1 --set train.time_limit_s="${TRAIN_S:-60}" \
  --no-rebuild > runs/ctr_beauty.log 2>&1
tail -n 5 runs/ctr_beauty.log; cp benchmarks/results/ctr_beauty.json "$OUT/" 2>/dev/null
tar czf "$OUT/runs.tgz" runs/ctr/*/results.json runs/ctr/logs 2>/dev/null
true
