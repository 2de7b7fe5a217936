#!/usr/bin/env bash
# Issue 4, the twentieth session's lease on the 1-GPU kind: the routed ELASTIC sublayer
# (model.compress_over: experts, route_topk 2 of 16) after its compiled top-r mask stopped calling topk
# (ops/dispatcher.route_keep, route_level), in the foreground, one call:
# 1. the routing tests on the GPU: the Triton dispatch with routing and decay compiled, and the
#    op-level routing tests (the compiled mask among them) -> runs/pytest_route13.log;
# 2. the speed row of longseq_speed_route.json again (ELASTIC, routed ELASTIC and SDPA in one run,
#    16k, one CUDA graph per step, max-autotune) -> runs/results/longseq_speed_route.json;
# 3. torch.profiler traces of both ELASTIC sublayers compiled (mode default) at 16k
#    -> runs/prof_route (benchmarks/profile_summary.py reads them here).
# Carry .whl; `SHORTLIST_COMMIT=<commit> bash benchmarks/gpu/round13.sh`; hands back $OUT/all.tgz.
set -u
cd "$(dirname "$0")/../.."
. benchmarks/gpu/lib.sh
gpu_setup
mkdir -p runs/results runs/prof_route
copy_out() {
  tar czf "$OUT/all.tgz" runs/results runs/*.log runs/prof_route 2>/dev/null
}
timeout 240 python3 -m pytest -q -p no:cacheprovider tests/test_dispatcher_routing.py \
  tests/test_dispatcher_triton.py -k "routing or route or decay or compiled" \
  > runs/pytest_route13.log 2>&1 || echo "pytest rc $?"
tail -n 2 runs/pytest_route13.log
timeout 300 python3 benchmarks/longseq_speed.py --device cuda --methods elastic,elastic-route,sdpa \
  --lengths 16384 --compile step-graph --compile-lengths 16384 --inductor max_autotune=True \
  --elastic-chunk 64 --repeats 20 --name longseq_speed_route > runs/speed_route.log 2>&1 \
  || echo "speed rc $?"
tail -n 5 runs/speed_route.log
copy_out
for m in elastic elastic-route; do
  timeout 120 python3 benchmarks/longseq_profile.py --device cuda --out runs/prof_route --rows 40 \
    --length 16384 --elastic-chunk 64 --compile default --method "$m" > "runs/prof_$m.log" 2>&1 \
    || echo "profile $m rc $?"
done
copy_out
for f in runs/prof_route/*.txt; do echo "=== $f"; head -24 "$f" | cut -c1-70,120-200; done
