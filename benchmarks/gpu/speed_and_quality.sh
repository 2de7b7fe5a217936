#!/usr/bin/env bash
# GPU call 1 (see README.md beside this file): install, time training alone on the GPU, then start
# the quality runs detached. Needs SHORTLIST_COMMIT in the environment (the copy has no .git).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1 SHORTLIST_COMMIT="${SHORTLIST_COMMIT:-unknown}"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
bash benchmarks/recbole/setup.sh --target /tmp/recbole-site --wheels .whl-recbole
mkdir -p runs/recbole && tar xzf runs/recbole/carry/data.tgz -C runs/recbole
export PYTHONPATH=/tmp/site:$PWD/src
RB="PYTHONPATH=/tmp/recbole-site python3 benchmarks/recbole/run_sasrec.py --speed-only --epochs 1 --device cuda"
python3 benchmarks/train_speed.py --split .gpu/amazon-beauty.npz --dataset amazon-beauty --max-len 20 --batch-size 256 \
  --device cuda --workers 4 --steps 80 --epochs 3 --name train_speed_gpu --variant "H200, amazon-beauty, L=20, B=256" \
  --recbole-cmd "$RB --data runs/recbole/data/amazon-beauty-tiger-L20 --max-steps 200 --out /tmp/rbs1.json" --recbole-json /tmp/rbs1.json
python3 benchmarks/train_speed.py --split .gpu/ml-100k.npz --dataset ml-100k --max-len 200 --batch-size 128 \
  --device cuda --workers 4 --steps 7 --epochs 4 --name train_speed_gpu --variant "H200, ml-100k, L=200, B=128" --merge \
  --recbole-cmd "$RB --data runs/recbole/data/ml-100k-hstu-L200 --batch-size 128 --max-steps 200 --out /tmp/rbs2.json" --recbole-json /tmp/rbs2.json
cp benchmarks/results/train_speed_gpu.json "$OUT/"
setsid nohup bash benchmarks/gpu/quality.sh > runs/quality.log 2>&1 < /dev/null &
sleep 30
