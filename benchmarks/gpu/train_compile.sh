#!/usr/bin/env bash
# Whole training runs with and without train.compile (benchmarks/train_compile.py), alone on the GPU,
# in one call: MovieLens latest-small's frozen KSA and ELASTIC (2,048 events) in MLS_MODES, then
# ML-100k's frozen SASRec and ELASTIC (200 events, where the sweeps are CPU-bound) in ML_MODES; each
# case a process under CASE_S seconds. Carry .whl, .gpu/ml-latest-small.npz and .gpu/ml-100k.npz.
# The result files reach $OUT after every case (SHORTLIST_RESULTS_COPY), so a call cut at its limit
# still hands back the finished cases.
set -u
cd "$(dirname "$0")/../.."
. benchmarks/gpu/lib.sh
export SHORTLIST_RESULTS_COPY="$OUT"
gpu_setup
CASE_S="${CASE_S:-150}"
python3 benchmarks/train_compile.py --split .gpu/ml-latest-small.npz --dataset ml-latest-small \
  --models "${MLS_MODELS:-ksa,elastic}" --modes "${MLS_MODES:-off,default,max-autotune}" \
  --timeout "$CASE_S" --name train_compile_mls --no-rebuild 2>&1 | tee "$OUT/train_compile_mls.log" | tail -n 12
python3 benchmarks/train_compile.py --split .gpu/ml-100k.npz --dataset ml-100k \
  --models "${ML_MODELS:-sasrec,elastic}" --modes "${ML_MODES:-off,default,reduce-overhead}" \
  --timeout "$CASE_S" --name train_compile_ml100k --no-rebuild 2>&1 | tee "$OUT/train_compile_ml100k.log" | tail -n 12
