#!/usr/bin/env bash
# Issue 4, the nineteenth session's lease on the 2-GPU kind, everything detached: ELASTIC with each
# event routed to its top experts (model.compress_over: experts, model.route_topk; ops/dispatcher.py).
# GPU 0: 1. the Triton dispatch tests with routing, compiled on the GPU -> runs/pytest_routing.log;
#        2. the planted long-range split under the 'long' protocol, SYN_MODELS x SYN_SEEDS
#           -> sweep_synthetic_route, runs/synthetic_full (SYN_S a training-time limit).
# GPU 1: MovieLens latest-small round 11, MLS_MODELS from configs/ml-latest-small/sweep2 x 5 seeds
#        -> sweep_mls_round11, runs/mls_round11 (MLS_S a training-time limit).
# Second call (same script): PYTEST=0, MLS_MODELS="" (no MovieLens part), SYN_NAME=sweep_synthetic_route_b
# with SYN_MODELS on GPU 0 and SYN_MODELS_B -> SYN_NAME_B (sweep_synthetic_route_c) on GPU 1.
# Call 1, carrying .whl, .gpu/synthetic-long.npz and .gpu/ml-latest-small.npz:
# `SHORTLIST_COMMIT=<commit> FIRST_WAIT_S=540 bash benchmarks/gpu/round12.sh`; then
# `bash benchmarks/gpu/round12.sh --wait 540` until runs/round12.done exists; each call hands back
# $OUT/all.tgz.
set -u
cd "$(dirname "$0")/../.."
. benchmarks/gpu/lib.sh
copy_out() {  # one tarball: at most 8 files come back from $OUT
  tar czf "$OUT/all.tgz" runs/results runs/*.log runs/*/logs runs/*/*/results.json \
    runs/*/*/ranks.npz 2>/dev/null
  tail -n 2 runs/*.log 2>/dev/null | tail -n 30
}
round_preamble runs/round12.done "$@"
export SYN_SEEDS="${SYN_SEEDS:-0,1,2}" SYN_S="${SYN_S:-420}" MLS_S="${MLS_S:-600}" PYTEST="${PYTEST:-1}" \
  SYN_NAME="${SYN_NAME:-sweep_synthetic_route}" SYN_NAME_B="${SYN_NAME_B:-sweep_synthetic_route_c}" \
  SYN_MODELS="${SYN_MODELS:-elastic-long-m0-top1,elastic-long-m0-e64-top1,elastic-long-m0-e64-top2}" \
  SYN_MODELS_B="${SYN_MODELS_B:-}" \
  MLS_MODELS="${MLS_MODELS-elastic-m0-d2048-sw200-top1,elastic-m0-d2048-sw200-top2}"
setsid bash -c '
  . benchmarks/gpu/lib.sh
  ( export CUDA_VISIBLE_DEVICES=0
    if [ "$PYTEST" = 1 ]; then
      timeout 240 python3 -m pytest -q -p no:cacheprovider tests/test_dispatcher_triton.py \
        -k "routing or decay" > runs/pytest_routing.log 2>&1 || echo "pytest rc $?"
    fi
    synthetic_sweep "$SYN_NAME" "$SYN_MODELS" > runs/$SYN_NAME.log 2>&1 ) > runs/gpu0.log 2>&1 &
  ( export CUDA_VISIBLE_DEVICES=1
    if [ -n "$SYN_MODELS_B" ]; then synthetic_sweep "$SYN_NAME_B" "$SYN_MODELS_B" > runs/$SYN_NAME_B.log 2>&1; fi
    if [ -n "$MLS_MODELS" ]; then
      python3 benchmarks/seqrec.py run --name sweep_mls_round11 --dataset ml-latest-small \
        --split .gpu/ml-latest-small.npz --config-dir configs/ml-latest-small/sweep2 --models "$MLS_MODELS" \
        --seeds 0,1,2,3,4 --parallel 10 --out-dir runs/mls_round11 --set train.time_limit_s="$MLS_S" \
        --set train.num_workers=0 --no-rebuild > runs/mls_round11.log 2>&1
    fi ) > runs/gpu1.log 2>&1 &
  wait
  echo done > runs/round12.done' > runs/round12.log 2>&1 < /dev/null &
wait_then_copy runs/round12.done "${FIRST_WAIT_S:-30}"
