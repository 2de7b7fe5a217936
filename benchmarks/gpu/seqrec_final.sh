#!/usr/bin/env bash
# The issue-3 runs chosen by validation (one GPU call, about 8 minutes): ML-100k (HSTU protocol) with
# the frozen configs (train.windows=all) and RecBole's SASRec in the same run, and Beauty's HSTU
# (TIGER protocol) trained longer (its 120-epoch run was still improving at epoch 118).
# Needs the carried .whl, .whl-recbole, .gpu and runs/recbole/carry (see README.md beside this file).
set -u
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1 SHORTLIST_COMMIT="${SHORTLIST_COMMIT:-unknown}" OMP_NUM_THREADS=1
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
bash benchmarks/recbole/setup.sh --target /tmp/recbole-site --wheels .whl-recbole > /dev/null 2>&1
mkdir -p runs/recbole && tar xzf runs/recbole/carry/data.tgz -C runs/recbole
export PYTHONPATH=/tmp/site:$PWD/src
common="--set train.num_workers=1 --no-rebuild"
python3 benchmarks/seqrec.py run --name seqrec_beauty_hstu_long --dataset amazon-beauty --split .gpu/amazon-beauty.npz \
  --config-dir configs/amazon-beauty/sweep --models hstu-d128 --seeds 0,1,2 --parallel 3 \
  --out-dir runs/bh --set train.windows=all --set train.epochs=220 $common > runs/bench-beauty.log 2>&1 &
python3 benchmarks/seqrec.py run --name seqrec_ml100k --dataset ml-100k --split .gpu/ml-100k.npz \
  --models sasrec,hstu --seeds 0,1,2 --parallel 6 --out-dir runs/ml $common \
  --recbole-cmd "PYTHONPATH=/tmp/recbole-site python3 benchmarks/recbole/run_sasrec.py --data runs/recbole/data/ml-100k-hstu-L200 --device cuda --time-limit-s 480 --out runs/rb_ml100k.json > runs/rb_ml100k.log 2>&1" \
  --recbole-json runs/rb_ml100k.json > runs/bench-ml100k.log 2>&1 &
wait
tail -n 3 runs/bench-*.log; grep -h '"stopped_by"\|"epochs_run"' runs/rb_ml100k.json
cp benchmarks/results/seqrec_ml100k.json benchmarks/results/seqrec_beauty_hstu_long.json runs/rb_ml100k.json "$OUT/" 2>/dev/null
tar czf "$OUT/runs.tgz" runs/*/*/results.json runs/*/*/ranks.npz runs/*/logs 2>/dev/null
true
