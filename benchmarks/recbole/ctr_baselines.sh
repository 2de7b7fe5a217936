#!/usr/bin/env bash
# RecBole's DCNV2 and DeepFM on our exported CTR split, seeds one after another in two streams (the
# --recbole-cmd of benchmarks/ctr.py run). Usage: bash benchmarks/recbole/ctr_baselines.sh DATA_DIR
# OUT_DIR SEEDS [THREADS]; writes OUT_DIR/<token>-<model>-s<seed>.json and a log beside each.
# TUNED=1: each model with the best hyperparameters of RecBole's own ML-1M search
# (benchmark/hyper/context/DCNV2-ml-1m_context.md, DeepFM-ml-1m.md: the runs behind the published
# AUCs) instead of RecBole's defaults (and learning rate 1e-3).
set -u -f  # -f: no globbing (the tuned arguments hold brackets)
cd "$(dirname "$0")/../.."
data=$1 out=$2 seeds=$3 threads=${4:-1}
token=$(basename "$data")
mkdir -p "$out"
tuned() {  # MODEL -> run_ctr.py arguments of RecBole's published best trial on ML-1M
  [ "${TUNED:-0}" = 1 ] || return 0
  case $1 in
    DCNV2) echo "--lr 0.005 --set mlp_hidden_size=[256,256] --set cross_layer_num=2 --set dropout_prob=0.2 --set reg_weight=1" ;;
    DeepFM) echo "--lr 0.005 --set dropout_prob=0.1 --set mlp_hidden_size=[256,256,256]" ;;
  esac
}
stream() {
  for s in ${seeds//,/ }; do
    # shellcheck disable=SC2046  # the tuned arguments are words
    .venv-recbole/bin/python benchmarks/recbole/run_ctr.py --data "$data" --model "$1" --seed "$s" $(tuned "$1") \
      --threads "$threads" --work-dir "$out/work-$1-$s" --out "$out/$token-$1-s$s.json" \
      > "$out/$token-$1-s$s.log" 2>&1 || { echo "$1 seed $s failed: $out/$token-$1-s$s.log"; exit 1; }
  done
}
stream DCNV2 & a=$!
stream DeepFM & b=$!
wait $a && wait $b
