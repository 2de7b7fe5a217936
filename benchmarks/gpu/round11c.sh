#!/usr/bin/env bash
# Issue 4, the eighteenth session's last call, 1-GPU kind: ELASTIC without the interest memory with
# 64 or 128 experts per head (at least the planted split's 50 topics; the configs' headers say why)
# on the planted long-range split under the 'long' protocol, SYN_SEEDS x 2 configs at once
# -> sweep_synthetic_full_f, runs/synthetic_full (SYN_S a training-time limit: the lease's last
# minutes). One call, carrying .whl and .gpu/synthetic-long.npz:
# `SHORTLIST_COMMIT=<commit> FIRST_WAIT_S=330 bash benchmarks/gpu/round11c.sh`; `--wait S` collects.
set -u
cd "$(dirname "$0")/../.."
. benchmarks/gpu/lib.sh
copy_out() { copy_synthetic_full runs/synthetic_f.log; }
round_preamble runs/round11c.done "$@"
export SYN_SEEDS="${SYN_SEEDS:-0,1,2}" SYN_S="${SYN_S:-220}"
setsid bash -c '
  python3 benchmarks/seqrec.py run --name sweep_synthetic_full_f --dataset synthetic-long \
    --split .gpu/synthetic-long.npz --config-dir configs/synthetic --seeds "$SYN_SEEDS" --parallel 6 \
    --models elastic-long-m0-e64,elastic-long-m0-e128 --out-dir runs/synthetic_full \
    --set train.time_limit_s="$SYN_S" --set train.num_workers=0 --no-rebuild > runs/synthetic_f.log 2>&1
  echo done > runs/round11c.done' > runs/round11c.log 2>&1 < /dev/null &
wait_then_copy runs/round11c.done "${FIRST_WAIT_S:-30}"
