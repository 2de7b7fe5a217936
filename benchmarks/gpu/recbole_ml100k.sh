#!/usr/bin/env bash
# Issue 3's ML-100k comparison with RecBole converged: RecBole's SASRec x 3 seeds and ours (the
# frozen configs/ml-100k/{sasrec,hstu}.yaml x 5 seeds, with a patience of 50 epochs: validation on
# 943 users is noisy and a patience of 20 stopped some seeds early, docs/protocols.md) in one job,
# with nothing else on the machine
# (beside ~25 other processes RecBole's Python data pipeline starved: 2 epochs in 16 minutes).
# RecBole needs about 20 s an epoch here and tens of epochs to stop, longer than one call: call 1
#   bash benchmarks/gpu/recbole_ml100k.sh
# starts everything detached and returns; later calls (back to back: the machine is given back 30 s
# after a call) run `bash benchmarks/gpu/recbole_ml100k.sh --wait SECONDS` until runs/rb.done
# exists, and hand back $OUT/all.tgz. Then here, on the unpacked runs/:
#   python benchmarks/seqrec.py run --name seqrec_ml100k --dataset ml-100k --split .gpu/ml-100k.npz \
#     --models sasrec,hstu --seeds 0,1,2,3,4 --out-dir runs/ml_final --collect \
#     --recbole-json 'runs/rb_ml100k_s*.json'
# Three RecBole processes on the H200 ran at about 41 s an epoch (2026-11-29): give RB_S at least
# 40 epochs' worth, i.e. more than one 30-minute lease, or run fewer seeds.
# Carry: .whl, .whl-recbole, .gpu and runs/recbole/carry.
set -u
cd "$(dirname "$0")/../.."
. benchmarks/gpu/lib.sh
copy_out() {  # one tarball: at most 8 files come back from $OUT
  tar czf "$OUT/all.tgz" runs/results runs/rb_*.json runs/rb_*.log runs/ml_final.log \
    runs/ml_final/*/results.json runs/ml_final/logs 2>/dev/null
  tail -n 2 runs/rb_*.log runs/ml_final.log 2>/dev/null
}
if [ "${1:-}" = "--wait" ]; then wait_then_copy runs/rb.done "${2:-540}"; exit 0; fi
gpu_setup
fresh_done runs/rb.done
setsid bash -c '
  for s in 0 1 2; do
    PYTHONPATH=/tmp/recbole-site python3 benchmarks/recbole/run_sasrec.py --data runs/recbole/data/ml-100k-hstu-L200 \
      --device cuda --seed $s --workers "${RB_WORKERS:-2}" --time-limit-s "${RB_S:-1500}" \
      --out runs/rb_ml100k_s$s.json > runs/rb_ml100k_s$s.log 2>&1 &
  done
  python3 benchmarks/seqrec.py run --name seqrec_ml100k_final --dataset ml-100k --split .gpu/ml-100k.npz \
    --models sasrec,hstu --seeds 0,1,2,3,4 --parallel 4 --out-dir runs/ml_final \
    --set train.num_workers=0 --set train.patience="${PATIENCE:-50}" \
    --set train.time_limit_s="${OURS_S:-1500}" --no-rebuild > runs/ml_final.log 2>&1
  wait; echo done > runs/rb.done' > /dev/null 2>&1 < /dev/null &
sleep "${FIRST_WAIT_S:-120}"; copy_out
