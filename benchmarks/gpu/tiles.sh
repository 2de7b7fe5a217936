#!/usr/bin/env bash
# Issue 4 diagnostics: KSA's compiled step at L = 16k under candidate summary spans and FlexAttention
# tile settings (benchmarks/flex_tiles.py; ONLY: a subset), then its torch.profiler op table (compiled, mode "default"). Alone on
# the GPU, no carry; each candidate in its own process with its own limit (PROF_S=0: no profile).
# $OUT/tiles.tgz.
set -u
cd "$(dirname "$0")/../.."
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
mkdir -p runs/tiles
python3 benchmarks/flex_tiles.py --timeout "${TILE_S:-100}" ${ONLY:+--only "$ONLY"} 2>&1 | tee runs/tiles/tiles.log
tar czf "$OUT/tiles.tgz" runs/tiles
[ "${PROF_S:-180}" = 0 ] && exit 0
timeout "${PROF_S:-180}" python3 benchmarks/longseq_profile.py --device cuda --out runs/tiles/prof \
  --rows 30 --length 16384 --method ksa --compile default > runs/tiles/prof.log 2>&1 || echo "profile rc $?"
rm -f runs/tiles/prof/*.trace.json
tar czf "$OUT/tiles.tgz" runs/tiles
head -40 runs/tiles/prof/*.txt | cut -c1-58,100-200
