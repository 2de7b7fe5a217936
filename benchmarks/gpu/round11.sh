#!/usr/bin/env bash
# Issue 4, one lease on the 2-GPU kind (eighteenth session), everything detached:
# GPU 0, in order:
#   1. the Triton kernels' tests compiled on the GPU: the decayed state's scan
#      (tests/test_decay_scan_triton.py, with its torch.compile test) and the dispatch kernels with
#      decay (tests/test_dispatcher_triton.py) -> runs/pytest_triton.log;
#   2. the decayed ELASTIC layer with its chunk-level state from the Triton scan (elastic-decay)
#      beside the same layer with PyTorch's transitions (elastic-decay-torch), plain ELASTIC and
#      SDPA, with longseq_speed_decay.json's protocol plus that row -> longseq_speed_decay (SPEED_S
#      a time limit);
#   3. a torch.profiler table of the compiled decayed layer at 16k -> runs/prof_elastic-decay;
#   4. the planted long-range split under the 'long' protocol (whole histories at evaluation; the
#      earlier rounds were ranked from each history's last 20 events), SYN_MODELS_B x SYN_SEEDS.
# GPU 1, at once: the same split, SYN_MODELS_A x SYN_SEEDS.
# Both synthetic parts write one sweep file each (sweep_synthetic_full_a, _b; SYN_S a time limit),
# into runs/synthetic_full.
# Call 1: `SHORTLIST_COMMIT=<commit> bash benchmarks/gpu/round11.sh` carrying .whl and
# .gpu/synthetic-long.npz (made again by benchmarks/longseq_synthetic.py: protocol 'long'); then
# `bash benchmarks/gpu/round11.sh --wait 540` until runs/round11.done exists; each call hands back
# $OUT/all.tgz.
set -u
cd "$(dirname "$0")/../.."
. benchmarks/gpu/lib.sh
copy_out() {  # one tarball: at most 8 files come back from $OUT
  tar czf "$OUT/all.tgz" runs/results runs/*.log runs/prof* runs/*/logs runs/*/*/results.json \
    runs/*/*/ranks.npz 2>/dev/null
  tail -n 2 runs/*.log 2>/dev/null | tail -n 40
}
if [ "${1:-}" = "--wait" ]; then wait_then_copy runs/round11.done "${2:-540}"; exit 0; fi
gpu_setup
mkdir -p runs/results
nvidia-smi --query-gpu=name,memory.used,utilization.gpu --format=csv
export SPEED_S="${SPEED_S:-480}" SYN_SEEDS="${SYN_SEEDS:-0,1,2}" SYN_S="${SYN_S:-480}" \
  SYN_MODELS_A="${SYN_MODELS_A:-sasrec-long512,sasrec-long2048,ksa-long-c8}" \
  SYN_MODELS_B="${SYN_MODELS_B:-ksa-long,elastic-long,elastic-long-w8}"
fresh_done runs/round11.done
setsid bash -c '
  . benchmarks/gpu/lib.sh
  ( export CUDA_VISIBLE_DEVICES=0
    timeout 300 python3 -m pytest -q -p no:cacheprovider tests/test_decay_scan_triton.py \
      tests/test_dispatcher_triton.py > runs/pytest_triton.log 2>&1 || echo "pytest rc $?"
    timeout "$SPEED_S" python3 benchmarks/longseq_speed.py --device cuda \
      --methods elastic,elastic-decay,elastic-decay-torch,sdpa --lengths 2048,16384,65536 \
      --compile step-graph --compile-lengths 16384 --inductor max_autotune=True \
      --elastic-chunk 64 --repeats 20 --name longseq_speed_decay > runs/speed.log 2>&1 || echo "speed rc $?"
    timeout 200 python3 benchmarks/longseq_profile.py --device cuda --out runs/prof_elastic-decay \
      --rows 25 --length 16384 --method elastic-decay --compile default > runs/prof.log 2>&1 || echo "prof rc $?"
    synthetic_sweep sweep_synthetic_full_b "$SYN_MODELS_B" > runs/synthetic_b.log 2>&1 ) > runs/gpu0.log 2>&1 &
  ( export CUDA_VISIBLE_DEVICES=1
    synthetic_sweep sweep_synthetic_full_a "$SYN_MODELS_A" > runs/synthetic_a.log 2>&1 ) > runs/gpu1.log 2>&1 &
  wait
  echo done > runs/round11.done' > runs/round11.log 2>&1 < /dev/null &
wait_then_copy runs/round11.done "${FIRST_WAIT_S:-30}"
