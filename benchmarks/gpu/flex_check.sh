#!/usr/bin/env bash
# Issue 4 check of the KSA FlexAttention path in real training after the summary copies and the
# interval-built block masks: the frozen ML-100k KSA config (flex on CUDA) for 30 epochs, and the
# synthetic 10^4-event KSA config on its banded path and on the flex path side by side, each with a
# training time limit, all at once. Carry .whl and .gpu/synthetic-long.npz. $OUT/flex_check.tgz.
set -u
cd "$(dirname "$0")/../.."
source benchmarks/gpu/lib.sh
gpu_setup
mkdir -p runs/fc
J="python3 benchmarks/seqrec.py job --seed 0"
$J --config configs/ml-100k/ksa.yaml --split .gpu/ml-100k.npz --run-dir runs/fc/ml100k-ksa \
  --set train.epochs=30 > runs/fc/ml100k-ksa.log 2>&1 &
for impl in banded flex; do
  $J --config configs/synthetic/ksa-long.yaml --split .gpu/synthetic-long.npz --run-dir "runs/fc/syn-$impl" \
    --set model.attention_impl=$impl --set train.time_limit_s="${SYN_S:-150}" > "runs/fc/syn-$impl.log" 2>&1 &
done
wait
grep -h "epoch\|Error\|error" runs/fc/*.log | cut -c1-160 | tail -40
tar czf "$OUT/flex_check.tgz" runs/fc/*.log runs/fc/*/results.json 2>/dev/null
true
