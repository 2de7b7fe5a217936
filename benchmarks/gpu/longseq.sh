#!/usr/bin/env bash
# Issue 4 on the GPU, one call (about 9 minutes): the per-layer speed table first, alone on the GPU
# (benchmarks/longseq_speed.py), then the quality runs as parallel processes, each with a training
# time limit so that all finish within the call: ML-100k and Beauty (SASRec, KSA, ELASTIC at the
# frozen SASRec settings), MovieLens latest-small (SASRec at 200 vs KSA/ELASTIC at 2,048) and the
# synthetic planted long-range split (full attention at 512 and 2,048 vs KSA/ELASTIC at 10^4).
# Carry: .whl and the splits .gpu/{ml-100k,amazon-beauty,ml-latest-small,synthetic-long}.npz
# (benchmarks/seqrec.py prepare; benchmarks/longseq_synthetic.py). Then, here:
#   python benchmarks/longseq_quality.py --from <the copied folder>
set -u
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1 SHORTLIST_COMMIT="${SHORTLIST_COMMIT:-unknown}" OMP_NUM_THREADS=1
QUALITY_S="${QUALITY_S:-200}"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD/src
mkdir -p runs
timeout "${SPEED_S:-180}" python3 benchmarks/longseq_speed.py --device cuda --repeats 3 --warmup 2 > runs/speed.log 2>&1
tail -n 30 runs/speed.log; cp benchmarks/results/longseq_speed.json "$OUT/" 2>/dev/null
q() {  # name dataset split config-dir models seeds
  python3 benchmarks/seqrec.py run --name "$1" --dataset "$2" --split "$3" --config-dir "$4" --models "$5" \
    --seeds "$6" --parallel 9 --out-dir "runs/$1" --set train.num_workers=1 --set train.time_limit_s="$QUALITY_S" \
    --no-rebuild > "runs/$1.log" 2>&1
}
q longseq_ml100k ml-100k .gpu/ml-100k.npz configs/ml-100k sasrec,ksa,elastic 0,1,2 &
q longseq_beauty amazon-beauty .gpu/amazon-beauty.npz configs/amazon-beauty sasrec,ksa,elastic 0,1 &
q longseq_mls ml-latest-small .gpu/ml-latest-small.npz configs/ml-latest-small sasrec,ksa,elastic 0,1 &
q longseq_synthetic synthetic-long .gpu/synthetic-long.npz configs/synthetic sasrec-long512,sasrec-long2048,ksa-long,elastic-long 0 &
wait
tail -n 3 runs/longseq_*.log
cp benchmarks/results/longseq_*.json "$OUT/" 2>/dev/null
tar czf "$OUT/runs.tgz" runs/longseq_*/*/results.json runs/longseq_*/*/ranks.npz runs/longseq_*/*/metrics.jsonl runs/longseq_*/logs 2>/dev/null
true
