#!/usr/bin/env bash
# Issue 6 on the GPU, detached (returns at once; runs/ctr_ml1m.done marks the end): ML-1M CTR on the
# three random 8:1:1 splits (seed 2020, RecBole's, and seeds 1 and 2), every model in one run per split:
# the four frozen configs/ml-1m-ctr/{can,din,deepfm,dcnv2}.yaml beside the CAN candidates CTR_CANDS
# (configs/ml-1m-ctr/sweep), CTR_SEEDS_2020 (default 0-4) and CTR_SEEDS_SPLITS (default 0-2), in fp32
# (train.precision=fp32, as on CPU), 1 thread a process, CTR_PAR at once. Runs land in
# runs/ctr_gpu_<split>/<dataset>-<config>-s<seed>/results.json; collect here with
#   python benchmarks/ctr.py run --collect --config-dir <the same configs> ... --out-dir runs/ctr_gpu_<split>
# Carry .whl, .gpu/ml-1m-ctr.npz and runs/ctr-splits/ml-1m-ctr-split{1,2}.npz (benchmarks/ctr.py prepare
# --dataset ml-1m-ctr [--split-seed N]). Can share a call with converge.sh (PARTS=beauty): start this first.
set -u
cd "$(dirname "$0")/../.."
. benchmarks/gpu/lib.sh
[ -d /tmp/site ] || gpu_setup
mkdir -p runs/ctr_cfg
cp configs/ml-1m-ctr/{can,din,deepfm,dcnv2}.yaml runs/ctr_cfg/
CTR_CANDS=${CTR_CANDS:-can-dice-ug,can-dice-ugy,can-dice-ugy-l3,can-dice-ugy-ya}
for c in ${CTR_CANDS//,/ }; do cp "configs/ml-1m-ctr/sweep/$c.yaml" runs/ctr_cfg/; done
export CTR_MODELS="can,din,deepfm,dcnv2,$CTR_CANDS" CTR_PAR="${CTR_PAR:-10}" \
  CTR_SEEDS_2020="${CTR_SEEDS_2020:-0,1,2,3,4}" CTR_SEEDS_SPLITS="${CTR_SEEDS_SPLITS:-0,1,2}"
fresh_done runs/ctr_ml1m.done
setsid bash -c '
  for part in "2020 .gpu/ml-1m-ctr.npz $CTR_SEEDS_2020" \
              "1 runs/ctr-splits/ml-1m-ctr-split1.npz $CTR_SEEDS_SPLITS" \
              "2 runs/ctr-splits/ml-1m-ctr-split2.npz $CTR_SEEDS_SPLITS"; do set -- $part
    python3 benchmarks/ctr.py run --name ctr_ml1m_gpu_$1 --dataset ml-1m-ctr --data "$2" \
      --config-dir runs/ctr_cfg --models "$CTR_MODELS" --seeds "$3" --parallel "$CTR_PAR" \
      --device cuda --out-dir runs/ctr_gpu_$1 --set train.threads=1 --set train.precision=fp32 \
      --no-rebuild >> runs/ctr_ml1m.log 2>&1 || echo "split $1 failed" >> runs/ctr_ml1m.log
  done
  echo done > runs/ctr_ml1m.done' > /dev/null 2>&1 < /dev/null &
echo "ML-1M CTR started: $CTR_MODELS"
