#!/usr/bin/env bash
# RecBole's DCNV2 and DeepFM on our exported CTR split, seeds one after another in two streams (the
# --recbole-cmd of benchmarks/ctr.py run). Usage: bash benchmarks/recbole/ctr_baselines.sh DATA_DIR
# OUT_DIR SEEDS [THREADS]; writes OUT_DIR/<token>-<model>-s<seed>.json and a log beside each.
set -u
cd "$(dirname "$0")/../.."
data=$1 out=$2 seeds=$3 threads=${4:-1}
token=$(basename "$data")
mkdir -p "$out"
stream() {
  for s in ${seeds//,/ }; do
    .venv-recbole/bin/python benchmarks/recbole/run_ctr.py --data "$data" --model "$1" --seed "$s" \
      --threads "$threads" --work-dir "$out/work-$1-$s" --out "$out/$token-$1-s$s.json" \
      > "$out/$token-$1-s$s.log" 2>&1 || { echo "$1 seed $s failed: $out/$token-$1-s$s.log"; exit 1; }
  done
}
stream DCNV2 & a=$!
stream DeepFM & b=$!
wait $a && wait $b
