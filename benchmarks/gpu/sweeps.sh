#!/usr/bin/env bash
# Issues 3, 4 and 6 on the GPU in one ~25-minute job over three back-to-back calls. Call 1 runs
#   bash benchmarks/gpu/sweeps.sh
# which first times the speed tables ALONE on the GPU (benchmarks/longseq_speed.py with compiled
# rows, benchmarks/ctr_speed.py), then starts the rest detached (setsid) and returns; calls 2 and 3
# run `bash benchmarks/gpu/sweeps.sh --wait SECONDS` (at once: the machine is given back 30 s after
# a call), which waits and copies whatever has finished to $OUT. The detached part:
# - ML-100k (HSTU protocol): every config of configs/ml-100k/sweep x 5 seeds, and RecBole's SASRec
#   x 3 seeds beside them (early-stopping on the masked valid NDCG@10, as ours does);
# - Amazon Beauty (TIGER protocol): every config of configs/amazon-beauty/sweep x 3 seeds;
# - then per family (sasrec, hstu, ksa, elastic) the config with the best mean valid NDCG@10
#   (benchmarks/select_configs.py) -> seqrec_ml100k, seqrec_beauty, longseq_ml100k, longseq_beauty;
# - MovieLens latest-small (SASRec at 200 vs KSA / ELASTIC at 2,048) and the synthetic planted
#   long-range split, the frozen configs.
# Carry: .whl, .whl-recbole, runs/recbole/carry and the splits .gpu/{ml-100k,amazon-beauty,
# ml-latest-small,synthetic-long,ml-1m-ctr,amazon-beauty-ctr}.npz.
set -u
cd "$(dirname "$0")/../.."
. benchmarks/gpu/lib.sh
copy_out() {  # one tarball: at most 8 files come back from $OUT
  tar czf "$OUT/all.tgz" benchmarks/results runs/results runs/*.log runs/rb_*.json runs/*/logs \
    runs/*/*/results.json runs/*/*/metrics.jsonl 2>/dev/null
  tail -n 3 runs/*.log 2>/dev/null | tail -n 60
}
if [ "${1:-}" = "--wait" ]; then wait_then_copy runs/sweeps.done "${2:-540}"; exit 0; fi
gpu_setup
nvidia-smi --query-gpu=name,memory.used,utilization.gpu --format=csv
timeout "${SPEED_S:-330}" python3 benchmarks/longseq_speed.py --device cuda --repeats 5 --warmup 3 \
  --compile reduce-overhead --compile-lengths 2048,16384,32768,65536 > runs/speed.log 2>&1
timeout "${CTR_SPEED_S:-60}" python3 benchmarks/ctr_speed.py --data .gpu/ml-1m-ctr.npz .gpu/amazon-beauty-ctr.npz \
  --devices cuda --merge > runs/ctr_speed.log 2>&1
grep -E "L= *16384|L= *4096" runs/speed.log | cut -c 1-150
fresh_done runs/sweeps.done
setsid bash benchmarks/gpu/sweeps_detached.sh > runs/sweeps.log 2>&1 < /dev/null &
sleep "${FIRST_WAIT_S:-60}"; copy_out
