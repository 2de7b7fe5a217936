#!/usr/bin/env bash
# Issue 4, the second call of the eighteenth session's lease (after round11.sh), 2-GPU kind: ELASTIC
# candidates on the planted long-range split under the 'long' protocol, where every ELASTIC run of
# round11.sh (with the 1,024-slot interest memory) peaked at epoch 1 or 2:
#   GPU 0: elastic-long-m0 and elastic-long-m0-e32-pnewest x SYN_SEEDS; GPU 1: elastic-long-m0-lr3
#   -> sweep_synthetic_full_d (GPU 0), sweep_synthetic_full_e (GPU 1), runs/synthetic_full;
# SYN_S a training-time limit (330 s: the lease's remaining device time). One call, carrying .whl and
# .gpu/synthetic-long.npz: `SHORTLIST_COMMIT=<commit> FIRST_WAIT_S=470 bash benchmarks/gpu/round11b.sh`;
# `--wait S` collects later.
set -u
cd "$(dirname "$0")/../.."
. benchmarks/gpu/lib.sh
copy_out() { copy_synthetic_full runs/synthetic_d.log runs/synthetic_e.log; }
round_preamble runs/round11b.done "$@"
export SYN_SEEDS="${SYN_SEEDS:-0,1,2}" SYN_S="${SYN_S:-330}"
setsid bash -c '
  syn() {  # GPU NAME MODELS
    CUDA_VISIBLE_DEVICES=$1 python3 benchmarks/seqrec.py run --name "$2" --dataset synthetic-long \
      --split .gpu/synthetic-long.npz --config-dir configs/synthetic --seeds "$SYN_SEEDS" --parallel 9 \
      --models "$3" --out-dir runs/synthetic_full --set train.time_limit_s="$SYN_S" \
      --set train.num_workers=0 --no-rebuild
  }
  syn 0 sweep_synthetic_full_d elastic-long-m0,elastic-long-m0-e32-pnewest > runs/synthetic_d.log 2>&1 &
  syn 1 sweep_synthetic_full_e elastic-long-m0-lr3 > runs/synthetic_e.log 2>&1 &
  wait
  echo done > runs/round11b.done' > runs/round11b.log 2>&1 < /dev/null &
wait_then_copy runs/round11b.done "${FIRST_WAIT_S:-30}"
