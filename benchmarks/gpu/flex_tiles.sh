#!/usr/bin/env bash
# Issue 4 speed, round 4: KSA's FlexAttention kernels under other Triton tiles, and both linear
# methods with Inductor's coordinate-descent tuning of its own kernels, at L = 16k. About 6 minutes
# (the tile sweep's two rounds about 3), alone on the GPU, no carry; $OUT/tiles.tgz is rebuilt
# after each case.
#   1. benchmarks/ksa_flex_tiles.py: the KSA sublayer's compiled (reduce-overhead) step with each
#      tile setting of its built-in list, beside compiled SDPA -> ksa_flex_tiles.json;
#   2. longseq_speed.py at 16k, ksa / elastic / sdpa, compiled with coordinate_descent_tuning=True
#      (KSA_TILES: tiles for KSA, e.g. the winner of 1) -> probe_cdt.json.
set -u
cd "$(dirname "$0")/../.."
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
mkdir -p runs/tiles
pack() { cp benchmarks/results/ksa_flex_tiles.json benchmarks/results/probe_cdt.json runs/tiles/ 2>/dev/null
  tar czf "$OUT/tiles.tgz" runs/tiles; }
timeout "${TILES_S:-300}" python3 benchmarks/ksa_flex_tiles.py --device cuda --length 16384 \
  > runs/tiles/tiles.log 2>&1 || echo "tiles rc $?"
pack
timeout "${CDT_S:-200}" python3 benchmarks/longseq_speed.py --device cuda --name probe_cdt --lengths 16384 \
  --methods ksa,elastic,sdpa --compile reduce-overhead --compile-lengths 16384 --elastic-chunk 128 \
  --repeats 7 --inductor coordinate_descent_tuning=True --ksa-tiles "${KSA_TILES:-}" \
  > runs/tiles/cdt.log 2>&1 || echo "cdt rc $?"
pack
grep -hE "sdpa|ksa|elastic" runs/tiles/tiles.log runs/tiles/cdt.log | grep -v Warning | cut -c 1-200 | tail -30
