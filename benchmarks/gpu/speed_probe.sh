#!/usr/bin/env bash
# Issue 4 diagnostics, round 3: what KSA's and ELASTIC's compiled (reduce-overhead) step at L = 16k
# still spends, and how the ratio to flash SDPA moves with KSA's summary span and with the batch.
# About 6 minutes, alone on the GPU, no carry. Each case has its own time limit; $OUT/probe.tgz is
# rebuilt after each, so a hung compile costs its own limit only.
#   1. torch.profiler op tables of the compiled step (benchmarks/longseq_profile.py) for ksa,
#      elastic and sdpa: self CUDA time per kernel, to see what is left besides the attention kernel;
#   2. KSA with summary spans of 1,024 and 4,096 queries per copy (default 2,048);
#   3. sdpa, ksa and elastic at 262,144 tokens per batch (4x the table's): whether the ratio is
#      bound by a fixed per-step cost.
set -u
cd "$(dirname "$0")/../.."
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
mkdir -p runs/probe
pack() { rm -f runs/probe/*.trace.json; tar czf "$OUT/probe.tgz" runs/probe; }
for m in ksa elastic sdpa; do
  timeout 150 python3 benchmarks/longseq_profile.py --device cuda --out runs/probe --rows 30 \
    --length 16384 --method "$m" --elastic-chunk 128 --compile reduce-overhead \
    > "runs/probe/prof_$m.log" 2>&1 || echo "prof $m rc $?"
  pack
done
S="python3 benchmarks/longseq_speed.py --device cuda --repeats 7 --warmup 3 --lengths 16384 \
  --compile reduce-overhead --compile-lengths 16384 --elastic-chunk 128"
case_() {  # NAME SECONDS ARGS...
  local name=$1 s=$2; shift 2
  timeout "$s" $S --name "probe_$name" "$@" > "runs/probe/$name.log" 2>&1 || echo "$name: rc $?"
  pack
}
case_ span1024 120 --methods sdpa,ksa --ksa-span 1024
case_ span4096 120 --methods ksa --ksa-span 4096
case_ tok256k 240 --methods sdpa,ksa,elastic --tokens 262144
grep -h "L= 16384" runs/probe/*.log | cut -c 1-160
for m in ksa elastic sdpa; do echo "== $m"; grep -E "Self CUDA time total|Self CPU time total" runs/probe/prof_$m.log; done
