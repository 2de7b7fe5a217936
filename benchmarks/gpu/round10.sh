#!/usr/bin/env bash
# Issue 4, one lease on the 2-GPU kind (seventeenth session), everything detached (round9.sh's speed
# step ran in the foreground and pushed its call past the 600 s limit):
# GPU 0, in order:
#   1. the decayed ELASTIC layer in its new form (no per-position factors: ops/dispatcher.py's
#      ChunkStates) with longseq_speed_decay.json's own command, so the file is replaced by a run of
#      the same protocol (elastic, elastic-decay and sdpa at 2k / 16k / 64k, compiled at 16k with GEMM
#      autotuning) -> longseq_speed_decay (SPEED_S a time limit);
#   2. torch.profiler tables of the compiled decayed and plain layers at 16k -> runs/prof*;
#   3. the planted long-range split with decay, configs/synthetic/elastic-long-d8192 x SYN_SEEDS
#      (0,1,2), SYN_S a time limit -> sweep_synthetic_long_round2, runs/synthetic (SYN=0 leaves it out).
# GPU 1, at once:
#   4. MovieLens latest-small round 10: MLS_MODELS (local windows of 1 and 4 events on the chosen
#      config) x 5 seeds -> sweep_mls_round10, runs/mls_sweep (MLS_S a time limit);
#   5. Amazon Beauty's frozen SASRec, KSA and ELASTIC (now with recency decay) x 3 seeds side by side
#      -> longseq_beauty, runs/final/beauty (BEAUTY_S a time limit; BEAUTY=0 leaves it out).
# Call 1: `SHORTLIST_COMMIT=<commit> bash benchmarks/gpu/round10.sh` carrying .whl and
# .gpu/{ml-latest-small,amazon-beauty,synthetic-long}.npz; then `bash benchmarks/gpu/round10.sh --wait
# 540` until runs/round10.done exists; each call hands back $OUT/all.tgz.
set -u
cd "$(dirname "$0")/../.."
. benchmarks/gpu/lib.sh
copy_out() {  # one tarball: at most 8 files come back from $OUT
  tar czf "$OUT/all.tgz" runs/results runs/*.log runs/prof* runs/*/logs runs/*/*/results.json \
    runs/*/*/ranks.npz runs/final/*/*/results.json runs/final/*/*/ranks.npz runs/final/*/logs 2>/dev/null
  tail -n 2 runs/*.log 2>/dev/null | tail -n 40
}
if [ "${1:-}" = "--wait" ]; then wait_then_copy runs/round10.done "${2:-540}"; exit 0; fi
gpu_setup
mkdir -p runs/results runs/final
nvidia-smi --query-gpu=name,memory.used,utilization.gpu --format=csv
export MLS_MODELS="${MLS_MODELS:-elastic-m0-d2048-sw200-w1,elastic-m0-d2048-sw200-w4}" \
  MLS_NAME="${MLS_NAME:-sweep_mls_round10}" MLS_S="${MLS_S:-900}" SPEED_S="${SPEED_S:-480}" \
  SYN="${SYN:-1}" SYN_SEEDS="${SYN_SEEDS:-0,1,2}" SYN_S="${SYN_S:-480}" BEAUTY="${BEAUTY:-1}" \
  BEAUTY_S="${BEAUTY_S:-720}"
fresh_done runs/round10.done
setsid bash -c '
  common="--set train.num_workers=0 --no-rebuild"
  ( export CUDA_VISIBLE_DEVICES=0
    timeout "$SPEED_S" python3 benchmarks/longseq_speed.py --device cuda --methods elastic,elastic-decay,sdpa \
      --lengths 2048,16384,65536 --compile step-graph --compile-lengths 16384 --inductor max_autotune=True \
      --elastic-chunk 64 --repeats 20 --name longseq_speed_decay > runs/speed.log 2>&1 || echo "speed rc $?"
    for m in elastic-decay elastic; do
      timeout 200 python3 benchmarks/longseq_profile.py --device cuda --out runs/prof_$m --rows 25 \
        --length 16384 --method $m --compile default > runs/prof_$m.log 2>&1 || echo "prof $m rc $?"
    done
    if [ "$SYN" = 1 ]; then
      python3 benchmarks/seqrec.py run --name sweep_synthetic_long_round2 --dataset synthetic-long \
        --split .gpu/synthetic-long.npz --config-dir configs/synthetic --seeds "$SYN_SEEDS" --parallel 3 \
        --models elastic-long-d8192 --out-dir runs/synthetic --set train.time_limit_s="$SYN_S" $common \
        > runs/synthetic.log 2>&1
    fi ) > runs/gpu0.log 2>&1 &
  CUDA_VISIBLE_DEVICES=1 python3 benchmarks/seqrec.py run --name "$MLS_NAME" --dataset ml-latest-small \
    --split .gpu/ml-latest-small.npz --config-dir configs/ml-latest-small/sweep2 --models "$MLS_MODELS" \
    --seeds 0,1,2,3,4 --parallel 10 --out-dir runs/mls_sweep --set train.time_limit_s="$MLS_S" $common \
    > runs/mls_sweep.log 2>&1 &
  if [ "$BEAUTY" = 1 ]; then
    CUDA_VISIBLE_DEVICES=1 python3 benchmarks/seqrec.py run --name longseq_beauty --dataset amazon-beauty \
      --split .gpu/amazon-beauty.npz --config-dir configs/amazon-beauty --models sasrec,ksa,elastic \
      --seeds 0,1,2 --parallel 9 --out-dir runs/final/beauty --set train.time_limit_s="$BEAUTY_S" \
      $common > runs/final_beauty.log 2>&1 &
  fi
  wait
  echo done > runs/round10.done' > runs/round10.log 2>&1 < /dev/null &
wait_then_copy runs/round10.done "${FIRST_WAIT_S:-30}"
