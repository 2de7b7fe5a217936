#!/usr/bin/env bash
# Issue 4, one lease on the 2-GPU kind (for its 32 cores; sixteenth session, prepared in the fifteenth):
# 1. alone on the GPU first: the decayed ELASTIC layer at L = 16k with the chunk-level state as one
#    (n, n) transition up to 256 chunks instead of 64 (longseq_speed.py --decay-one-level-chunks 256;
#    n = 256 at 16k and C = 64), eager and compiled as one CUDA graph -> longseq_speed_decay_onelevel256
#    (SPEED=0 leaves it out);
# 2. detached, on GPU 0: MovieLens latest-small round 9 (MLS_MODELS from configs/ml-latest-small/sweep2,
#    5 seeds, 15 at once) -> sweep_mls_round9, runs/mls_sweep;
# 3. detached, on GPU 1: the diagnostic ELASTIC at SASRec's length 200 (configs/ml-latest-small/diag)
#    -> mls_elastic_at_200, runs/mls_diag; SASRec at 200 (the frozen config) x 5 seeds again, since the
#    run folders whose per-user ranks the paired intervals need were not kept -> mls_sasrec_ref,
#    runs/mls_sasrec; and train.deterministic on ML-100k's frozen ELASTIC, twice, 3 epochs each
#    (runs/det_a, runs/det_b: equal metrics if the deterministic kernels are enough).
# Call 1: FIRST_WAIT_S=420 bash benchmarks/gpu/round9.sh; then `bash benchmarks/gpu/round9.sh --wait
# 540` until runs/round9.done exists; each call hands back $OUT/all.tgz. Carry .whl,
# .gpu/ml-latest-small.npz and .gpu/ml-100k.npz. Set SHORTLIST_COMMIT.
set -u
cd "$(dirname "$0")/../.."
. benchmarks/gpu/lib.sh
copy_out() {  # one tarball: at most 8 files come back from $OUT
  tar czf "$OUT/all.tgz" runs/results runs/*.log runs/*/logs runs/*/*/results.json runs/*/*/ranks.npz \
    runs/det_*/results.json runs/det_*/metrics.jsonl 2>/dev/null
  tail -n 2 runs/*.log 2>/dev/null | tail -n 40
}
if [ "${1:-}" = "--wait" ]; then wait_then_copy runs/round9.done "${2:-540}"; exit 0; fi
gpu_setup
mkdir -p runs/results
nvidia-smi --query-gpu=name,memory.used,utilization.gpu --format=csv
if [ "${SPEED:-1}" = 1 ]; then
  timeout 240 python3 benchmarks/longseq_speed.py --device cuda --methods elastic,elastic-decay,sdpa \
    --lengths 16384 --compile step-graph --compile-lengths 16384 --inductor max_autotune=True \
    --elastic-chunk 64 --repeats 20 --decay-one-level-chunks 256 --name longseq_speed_decay_onelevel256 \
    > runs/speed.log 2>&1 || echo "speed rc $?"
  tail -n 8 runs/speed.log
fi
export MLS_MODELS="${MLS_MODELS:-elastic-m0-d256-sw200,elastic-m0-pnewest-d256-sw200,elastic-e32-m0-d2048-sw200}" \
  MLS_NAME="${MLS_NAME:-sweep_mls_round9}" MLS_S="${MLS_S:-900}"
fresh_done runs/round9.done
setsid bash -c '
  common="--set train.num_workers=0 --no-rebuild"
  split=.gpu/ml-latest-small.npz
  CUDA_VISIBLE_DEVICES=0 python3 benchmarks/seqrec.py run --name "$MLS_NAME" --dataset ml-latest-small --split $split \
    --config-dir configs/ml-latest-small/sweep2 --models "$MLS_MODELS" --seeds 0,1,2,3,4 --parallel 15 \
    --out-dir runs/mls_sweep --set train.time_limit_s="$MLS_S" $common > runs/mls_sweep.log 2>&1 &
  CUDA_VISIBLE_DEVICES=1 python3 benchmarks/seqrec.py run --name mls_elastic_at_200 --dataset ml-latest-small --split $split \
    --config-dir configs/ml-latest-small/diag --models elastic-l200-d256 --seeds 0,1,2,3,4 --parallel 5 \
    --out-dir runs/mls_diag --set train.time_limit_s="$MLS_S" $common > runs/mls_diag.log 2>&1 &
  CUDA_VISIBLE_DEVICES=1 python3 benchmarks/seqrec.py run --name mls_sasrec_ref --dataset ml-latest-small --split $split \
    --config-dir configs/ml-latest-small --models sasrec --seeds 0,1,2,3,4 --parallel 5 \
    --out-dir runs/mls_sasrec --set train.time_limit_s="$MLS_S" $common > runs/mls_sasrec.log 2>&1 &
  ( for r in a b; do
      CUDA_VISIBLE_DEVICES=1 python3 benchmarks/seqrec.py job --config configs/ml-100k/elastic.yaml \
        --split .gpu/ml-100k.npz --seed 1 --run-dir runs/det_$r --set train.deterministic=true \
        --set train.epochs=3 --set train.num_workers=0
    done ) > runs/det.log 2>&1 &
  wait
  echo done > runs/round9.done' > runs/round9.log 2>&1 < /dev/null &
wait_then_copy runs/round9.done "${FIRST_WAIT_S:-30}"
