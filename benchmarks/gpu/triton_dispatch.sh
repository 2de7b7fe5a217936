#!/usr/bin/env bash
# ELASTIC's Triton dispatch (ops/dispatcher_triton.py, impl="triton") on the GPU, alone on it, about
# 4 minutes: (1) its tests compiled for the GPU (tests/test_dispatcher_triton.py, pytest carried as
# wheels in .whl-test: `pip download pytest -d .whl-test`); (2) the 16k sublayer step, eager and
# compiled (reduce-overhead), beside the chunked path (chunk 128) and SDPA in the same process, once
# per Triton chunk in CHUNKS (default "32 64"; 128 does not fit an H200 SM) -> benchmarks/results/longseq_speed_triton_c<C>.json.
# Carry: .whl-test. Hands back $OUT/triton.tgz (results and logs).
set -u
cd "$(dirname "$0")/../.."
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 SHORTLIST_COMMIT="${SHORTLIST_COMMIT:-unknown}"
mkdir -p runs/triton
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl-test/*.whl
pack() { cp benchmarks/results/longseq_speed_triton_c*.json runs/triton/ 2>/dev/null
  tar czf "$OUT/triton.tgz" runs/triton; }
timeout "${TEST_S:-240}" python3 -m pytest -v -p no:cacheprovider -o addopts="" \
  tests/test_dispatcher_triton.py > runs/triton/tests.log 2>&1
echo "tests rc $?"; grep -E "PASS|FAIL|SKIP|Error" runs/triton/tests.log | cut -c 1-160 | tail -20
pack
for c in ${CHUNKS:-32 64}; do
  timeout "${SPEED_S:-150}" python3 benchmarks/longseq_speed.py --device cuda --name "longseq_speed_triton_c$c" \
    --lengths 16384 --methods elastic,elastic-triton,sdpa --compile reduce-overhead \
    --compile-lengths 16384 --elastic-chunk 128 --elastic-triton-chunk "$c" --repeats 10 --warmup 3 \
    > "runs/triton/speed_c$c.log" 2>&1
  echo "speed c$c rc $?"; grep -E "elastic|sdpa" "runs/triton/speed_c$c.log" | grep -v Warn | cut -c 1-180 | tail -12
  pack
done
