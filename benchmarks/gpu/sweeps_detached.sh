#!/usr/bin/env bash
# The detached part of benchmarks/gpu/sweeps.sh (see there); writes runs/sweeps.done at the end.
set -u
cd "$(dirname "$0")/../.."
common="--set train.num_workers=0 --no-rebuild"
sweep() {  # name dataset split config-dir models seeds parallel time-limit [extra...]
  local name=$1 dataset=$2 split=$3 dir=$4 models=$5 seeds=$6 par=$7 limit=$8; shift 8
  local args=(--name "$name" --dataset "$dataset" --split "$split" --config-dir "$dir" --models "$models"
    --seeds "$seeds" --out-dir "runs/$name" --set train.time_limit_s="$limit" $common "$@")
  python3 benchmarks/seqrec.py run "${args[@]}" --parallel "$par" > "runs/$name.log" 2>&1 \
    || python3 benchmarks/seqrec.py run "${args[@]}" --collect >> "runs/$name.log" 2>&1
}
for s in 0 1 2; do
  PYTHONPATH=/tmp/recbole-site python3 benchmarks/recbole/run_sasrec.py --data runs/recbole/data/ml-100k-hstu-L200 \
    --device cuda --seed "$s" --time-limit-s "${RB_S:-960}" --out "runs/rb_ml100k_s$s.json" > "runs/rb_ml100k_s$s.log" 2>&1 &
done
(
  sweep sweep_ml100k ml-100k .gpu/ml-100k.npz configs/ml-100k/sweep \
    "$(ls configs/ml-100k/sweep | sed 's/\.yaml$//' | paste -sd, -)" 0,1,2,3,4 8 240
  python3 benchmarks/select_configs.py --sweep benchmarks/results/sweep_ml100k.json --families sasrec,ksa,elastic \
    --name longseq_ml100k --no-rebuild >> runs/select.log 2>&1
  q() { python3 benchmarks/seqrec.py run --name "$1" --dataset "$2" --split "$3" --config-dir "$4" --models "$5" \
    --seeds "$6" --parallel 4 --out-dir "runs/$1" --set train.time_limit_s=300 $common > "runs/$1.log" 2>&1 \
    || python3 benchmarks/seqrec.py run --name "$1" --dataset "$2" --split "$3" --config-dir "$4" --models "$5" \
    --seeds "$6" --out-dir "runs/$1" --collect $common >> "runs/$1.log" 2>&1; }
  q longseq_mls ml-latest-small .gpu/ml-latest-small.npz configs/ml-latest-small sasrec,ksa,elastic 0,1,2 &
  q longseq_synthetic synthetic-long .gpu/synthetic-long.npz configs/synthetic \
    sasrec-long512,sasrec-long2048,ksa-long,elastic-long 0,1 &
  wait
) &
(
  sweep sweep_beauty amazon-beauty .gpu/amazon-beauty.npz configs/amazon-beauty/sweep \
    sasrec-d128,sasrec-d256,sasrec-d128-l3,sasrec-d256-do6,hstu-d128,hstu-d256,hstu-d128-l3,hstu-d128-do6,ksa-c4w2,ksa-c4w4,ksa-c4w2-hybrid,elastic-e16,elastic-e32 \
    0,1,2 13 300 \
    --set train.windows=all --set train.patience=30 --set train.epochs=200
  python3 benchmarks/select_configs.py --sweep benchmarks/results/sweep_beauty.json --families sasrec,hstu \
    --name seqrec_beauty --no-rebuild >> runs/select.log 2>&1
  python3 benchmarks/select_configs.py --sweep benchmarks/results/sweep_beauty.json --families sasrec,ksa,elastic \
    --name longseq_beauty --no-rebuild >> runs/select.log 2>&1
) &
wait
python3 benchmarks/select_configs.py --sweep benchmarks/results/sweep_ml100k.json --families sasrec,hstu \
  --name seqrec_ml100k --recbole 'runs/rb_ml100k_s*.json' --no-rebuild >> runs/select.log 2>&1
# every result file is in runs/results already (sweeps.sh sources lib.sh: SHORTLIST_RESULTS_COPY)
echo done > runs/sweeps.done
