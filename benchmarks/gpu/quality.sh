#!/usr/bin/env bash
# Quality runs on the GPU, in one call (about 8 minutes): Beauty (TIGER protocol) with every training
# event a target (train.windows=all) for the sweep's configs, and ML-100k (HSTU protocol) with
# RecBole's SASRec in the same run (RecBole early-stops on the masked valid NDCG@10, as ours does),
# with and without windows. Every model x seed is a parallel process. Results are copied to $OUT.
# Needs the carried .whl, .whl-recbole, .gpu and runs/recbole/carry (see README.md beside this file).
set -u
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1 SHORTLIST_COMMIT="${SHORTLIST_COMMIT:-unknown}" OMP_NUM_THREADS=1
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
bash benchmarks/recbole/setup.sh --target /tmp/recbole-site --wheels .whl-recbole
mkdir -p runs/recbole && tar xzf runs/recbole/carry/data.tgz -C runs/recbole
export PYTHONPATH=/tmp/site:$PWD/src
common="--parallel 9 --set train.num_workers=1 --no-rebuild"
python3 benchmarks/seqrec.py run --name seqrec_beauty_windows --dataset amazon-beauty --split .gpu/amazon-beauty.npz \
  --config-dir configs/amazon-beauty/sweep --models sasrec-d128,sasrec-d256,hstu-d128 --seeds 0,1,2 \
  --out-dir runs/bw --set train.windows=all $common > runs/bench-beauty.log 2>&1 &
python3 benchmarks/seqrec.py run --name seqrec_ml100k --dataset ml-100k --split .gpu/ml-100k.npz \
  --models sasrec,hstu --seeds 0,1,2 --out-dir runs/ml $common \
  --recbole-cmd "PYTHONPATH=/tmp/recbole-site python3 benchmarks/recbole/run_sasrec.py --data runs/recbole/data/ml-100k-hstu-L200 --device cuda --time-limit-s 420 --out runs/rb_ml100k.json > runs/rb_ml100k.log 2>&1" \
  --recbole-json runs/rb_ml100k.json > runs/bench-ml100k.log 2>&1 &
python3 benchmarks/seqrec.py run --name seqrec_ml100k_windows --dataset ml-100k --split .gpu/ml-100k.npz \
  --models sasrec,hstu --seeds 0,1,2 --out-dir runs/mlw --set train.windows=all $common > runs/bench-ml100k-w.log 2>&1 &
wait
echo ALL-DONE > runs/quality.done
tail -n 4 runs/bench-*.log runs/rb_ml100k.log
cp benchmarks/results/seqrec_*.json runs/rb_ml100k.json "$OUT/" 2>/dev/null
tar czf "$OUT/runs.tgz" runs/*/*/results.json runs/*/*/ranks.npz runs/*/logs 2>/dev/null
true
