#!/usr/bin/env bash
# The quality runs (started detached by speed_and_quality.sh): Beauty (TIGER protocol) and ML-100k
# (HSTU protocol, RecBole's SASRec beside ours in the same run), 3 seeds each, in parallel processes.
set -u
cd "$(dirname "$0")/../.."
mkdir -p runs
export PYTHONPATH=/tmp/site:$PWD/src OMP_NUM_THREADS=2 PYTHONUNBUFFERED=1
python3 benchmarks/seqrec.py run --name seqrec_beauty --dataset amazon-beauty --split .gpu/amazon-beauty.npz \
  --models sasrec,hstu --seeds 0,1,2 --parallel 6 --out-dir runs/bench --set train.num_workers=1 --no-rebuild \
  > runs/bench-beauty.log 2>&1 &
python3 benchmarks/seqrec.py run --name seqrec_ml100k --dataset ml-100k --split .gpu/ml-100k.npz \
  --models sasrec,hstu --seeds 0,1,2 --parallel 6 --out-dir runs/bench --set train.num_workers=1 --no-rebuild \
  --recbole-cmd "PYTHONPATH=/tmp/recbole-site python3 benchmarks/recbole/run_sasrec.py --data runs/recbole/data/ml-100k-hstu-L200 --device cuda --time-limit-s 480 --out runs/rb_ml100k.json > runs/rb_ml100k.log 2>&1" \
  --recbole-json runs/rb_ml100k.json > runs/bench-ml100k.log 2>&1 &
wait
echo ALL-DONE > runs/quality.done
