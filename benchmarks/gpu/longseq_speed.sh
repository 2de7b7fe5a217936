#!/usr/bin/env bash
# Issue 4's speed table alone on the GPU (benchmarks/longseq_speed.py: eager rows at every length,
# torch.compile(mode="reduce-overhead") rows at COMPILE_LENGTHS), 147 s on 2026-11-29. Hands back
# $OUT/speed.tgz with benchmarks/results/longseq_speed.json and the log. No carry needed. KSA_BLOCK
# sets KSA's FlexAttention block size (default 128; 64 aligns blocks with k = 64 chunks), ELASTIC_CHUNK
# ELASTIC's dispatcher chunk (default 128: the fastest of 64/128/256 at 16k in speed_variants.sh, and
# the result is the same whatever the chunk). The table includes ksa-banded (SPEED_S: a 420 s limit for
# five methods; METHODS picks a subset). SCOPES adds the attention op's own rows (default
# "sublayer,op", the op rows at OP_LENGTHS, default 16384). Run it before anything else on the
# machine: other processes skew the timings. KSA_TILES: the KSA FlexAttention kernels' Triton tiles
# ('key=value,...', shortlist.ops.ksa.parse_flex_tiles), "auto" (the default, as the table of
# 2026-11-30 was timed): the fastest of benchmarks/results/ksa_flex_tiles*.json
# (benchmarks/ksa_flex_tiles.py, gpu/flex_tiles.sh), or empty (KSA_TILES=) for Inductor's own.
# MODES: the compiled modes (default "reduce-overhead,step-graph": step-graph rows capture the whole
# step as one CUDA graph, longseq_speed.capture_step; about 200 s for the table on 2026-11-30).
# INDUCTOR: torch._inductor.config settings for the compiled rows (longseq_speed.py --inductor), e.g.
# INDUCTOR=max_autotune=True ELASTIC_CHUNK=64, the setting of longseq_speed_16k_autotune_*.json.
set -u
cd "$(dirname "$0")/../.."
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 SHORTLIST_COMMIT="${SHORTLIST_COMMIT:-unknown}"
mkdir -p runs
KSA_TILES=${KSA_TILES-auto}
if [ "$KSA_TILES" = auto ]; then
  KSA_TILES=$(python3 benchmarks/ksa_flex_tiles.py --best benchmarks/results/ksa_flex_tiles*.json)
  echo "KSA tiles: $KSA_TILES"
fi
timeout "${SPEED_S:-420}" python3 benchmarks/longseq_speed.py --device cuda --repeats 5 --warmup 3 \
  --compile "${MODES:-reduce-overhead,step-graph}" --compile-lengths "${COMPILE_LENGTHS:-16384,65536}" \
  --ksa-block "${KSA_BLOCK:-128}" --ksa-tiles "$KSA_TILES" --elastic-chunk "${ELASTIC_CHUNK:-128}" \
  --methods "${METHODS:-ksa,ksa-banded,elastic,sdpa,naive}" \
  --scopes "${SCOPES:-sublayer,op}" --op-lengths "${OP_LENGTHS:-16384}" \
  --inductor "${INDUCTOR:-}" > runs/speed.log 2>&1
echo "longseq_speed rc $?"
grep -E "L= *16384|L= *4096" runs/speed.log | cut -c 1-150
tar czf "$OUT/speed.tgz" benchmarks/results/longseq_speed.json runs/speed.log
