#!/usr/bin/env bash
# Issue 4 diagnostics: where KSA's and ELASTIC's forward + backward time goes at L = 16k, eager and
# compiled (mode "default": max-autotune's autotuning ran past a 10-minute call), as torch.profiler
# op tables (benchmarks/longseq_profile.py). Each case has its own time limit and the tarball is
# rebuilt after each, so a case that hangs costs its limit, not the call. $OUT/profile.tgz.
set -u
cd "$(dirname "$0")/../.."
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
mkdir -p runs/prof
P="python3 benchmarks/longseq_profile.py --device cuda --out runs/prof --rows 25 --length 16384"
case_() {  # NAME SECONDS ARGS...
  local name=$1 s=$2; shift 2
  timeout "$s" $P "$@" > "runs/prof/$name.log" 2>&1 || echo "$name: rc $?"
  tar czf "$OUT/profile.tgz" runs/prof
}
case_ ksa 90 --method ksa
case_ elastic 60 --method elastic
case_ ksa_c 150 --method ksa --compile default
case_ elastic_c 90 --method elastic --compile default
for f in runs/prof/*.txt; do echo "=== $f"; head -30 "$f" | cut -c1-60,100-200; done
