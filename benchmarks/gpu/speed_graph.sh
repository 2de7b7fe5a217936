#!/usr/bin/env bash
# Issue 4 speed at L = 16k with the whole step as one CUDA graph (longseq_speed.py --compile
# step-graph, capture_step) beside reduce-overhead, in one process, alone on the GPU, about 3
# minutes: KSA, ELASTIC (chunked, chunk 128), ELASTIC's Triton dispatch (chunk 32) and SDPA ->
# benchmarks/results/longseq_speed_graph.json, $OUT/graph.tgz with the logs. Carry .whl-test and
# .whl to run capture_step's own CUDA test first. If the graph rows hold,
# MODES=reduce-overhead,step-graph bash benchmarks/gpu/longseq_speed.sh gives the table.
set -u
cd "$(dirname "$0")/../.."
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 SHORTLIST_COMMIT="${SHORTLIST_COMMIT:-unknown}"
mkdir -p runs
if [ -d .whl-test ]; then  # carried: first the capture's own CUDA test (tests/test_bench_tools.py)
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl-test/*.whl .whl/*.whl
  PYTHONPATH=/tmp/site:$PYTHONPATH timeout 120 python3 -m pytest -q -p no:cacheprovider -o addopts="" \
    tests/test_bench_tools.py -k capture_step > runs/graph_test.log 2>&1
  echo "capture test rc $?"; tail -3 runs/graph_test.log
fi
timeout "${SPEED_S:-300}" python3 benchmarks/longseq_speed.py --device cuda --name longseq_speed_graph \
  --lengths 16384 --methods ksa,elastic,elastic-triton,sdpa --compile reduce-overhead,step-graph \
  --compile-lengths 16384 --elastic-chunk 128 --elastic-triton-chunk 32 --repeats 20 --warmup 3 \
  > runs/graph.log 2>&1
echo "speed_graph rc $?"
grep -E "L= *16384" runs/graph.log | grep -v Warn | cut -c 1-170
tar czf "$OUT/graph.tgz" benchmarks/results/longseq_speed_graph.json runs/graph*.log
