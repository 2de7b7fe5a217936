#!/usr/bin/env bash
# Issue 4's tables from one lease each, detached, in order:
# 1. the speed table ALONE on the GPU (benchmarks/gpu/longseq_speed.sh) with Inductor's GEMM
#    autotuning for every compiled row and ELASTIC's dispatcher chunks of 64 (INDUCTOR, ELASTIC_CHUNK;
#    the setting longseq_speed_16k_autotune_*.json chose), SPEED_S a time limit (600 s stopped it
#    during L = 64k on 2026-11-30) -> longseq_speed.json;
# 2. then the frozen configs of each family, chosen earlier by validation (benchmarks/select_configs.py
#    over the sweep files), trained again side by side in one job, so that KSA and ELASTIC are compared
#    with SASRec from the same run: configs/amazon-beauty/{sasrec,ksa,elastic}.yaml x 3 seeds ->
#    longseq_beauty.json and configs/ml-100k/{sasrec,ksa,elastic}.yaml x 5 seeds -> longseq_ml100k.json
#    (BEAUTY_S, ML_S: safety limits per run; ML_SEEDS the ML-100k seeds, 0-4; PARTS="speed beauty ml100k" picks);
# 3. ml100ksweep (not in the default PARTS): an ML-100k round, configs/ml-100k/sweep-$ML_ROUND (ML_ROUND
#    round2 by default, or round3, round4; SASRec's and KSA's frozen configs and ELASTIC candidates, patience 50)
#    x ML_SEEDS (0-4) in one job, ML_PAR at once (30) -> sweep_ml100k_$ML_ROUND,
#    then per family the best mean validation NDCG@10 (select_configs.py over that file alone) ->
#    longseq_ml100k, so that the choice and the same-run comparison come from one job (use it instead
#    of ml100k: both write longseq_ml100k).
# 4. mlssweep (not in the default PARTS): MovieLens latest-small candidates MLS_MODELS of MLS_DIR
#    (default configs/ml-latest-small/sweep2) x MLS_SEEDS (0,1,2,3,4), MLS_PAR at once (15), MLS_S a
#    safety limit (500) -> MLS_NAME (sweep_mls_round5), run dirs in runs/final/mls (needs
#    .gpu/ml-latest-small.npz).
# SPEED_LAST=1 times the speed table after the quality parts instead of before (alone on the GPU
# either way): a lease too short for everything then loses the table's last lengths, which reach
# runs/results one length at a time, not a sweep.
# Call 1: `SHORTLIST_COMMIT=<commit> bash benchmarks/gpu/final_rows.sh` carrying .whl,
# .gpu/amazon-beauty.npz and .gpu/ml-100k.npz; later calls `bash benchmarks/gpu/final_rows.sh --wait S`
# until runs/final.done exists; each hands back $OUT/all.tgz (runs/results holds the result files).
# Here: longseq_quality.py --from a folder with these two files and the MovieLens/synthetic parts.
set -u
cd "$(dirname "$0")/../.."
. benchmarks/gpu/lib.sh
copy_out() {
  tar czf "$OUT/all.tgz" runs/results runs/speed.log runs/final*.log runs/final/*/*/results.json \
    runs/final/*/*/ranks.npz runs/final/*/logs 2>/dev/null
  tail -n 2 runs/final*.log runs/speed.log 2>/dev/null | tail -n 30
}
if [ "${1:-}" = "--wait" ]; then wait_then_copy runs/final.done "${2:-540}"; exit 0; fi
gpu_setup
mkdir -p runs/results runs/final
export PARTS="${PARTS:-speed beauty ml100k}" BEAUTY_S="${BEAUTY_S:-900}" ML_S="${ML_S:-400}" \
  SPEED_S="${SPEED_S:-1100}" INDUCTOR="${INDUCTOR-max_autotune=True}" ELASTIC_CHUNK="${ELASTIC_CHUNK:-64}" \
  SPEED_LAST="${SPEED_LAST:-0}" ML_SEEDS="${ML_SEEDS:-0,1,2,3,4}" ML_ROUND="${ML_ROUND:-round2}" ML_PAR="${ML_PAR:-30}" MLS_DIR="${MLS_DIR:-configs/ml-latest-small/sweep2}" \
  MLS_MODELS="${MLS_MODELS:-elastic-m0-hybrid,elastic-m0-hybrid-ema995,elastic-m0-hybrid-pnewest-ema995}" \
  MLS_SEEDS="${MLS_SEEDS:-0,1,2,3,4}" MLS_PAR="${MLS_PAR:-15}" MLS_S="${MLS_S:-500}" \
  MLS_NAME="${MLS_NAME:-sweep_mls_round5}"
has() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }
if has ml100k && has ml100ksweep; then
  echo "PARTS: ml100k and ml100ksweep both write longseq_ml100k; pick one." >&2; exit 2
fi
fresh_done runs/final.done
setsid bash -c '
  has() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }
  speed() {  # its file reaches runs/results through SHORTLIST_RESULTS_COPY (lib.sh), after every length
    OUT=$(mktemp -d) bash benchmarks/gpu/longseq_speed.sh > runs/final_speed.log 2>&1
  }
  if has speed && [ "$SPEED_LAST" != 1 ]; then speed; fi
  common="--set train.num_workers=0 --no-rebuild"
  if has beauty; then
    python3 benchmarks/seqrec.py run --name longseq_beauty --dataset amazon-beauty \
      --split .gpu/amazon-beauty.npz --config-dir configs/amazon-beauty --models sasrec,ksa,elastic \
      --seeds 0,1,2 --parallel 9 --out-dir runs/final/beauty --set train.time_limit_s="$BEAUTY_S" \
      $common > runs/final_beauty.log 2>&1 &
  fi
  if has ml100k; then
    python3 benchmarks/seqrec.py run --name longseq_ml100k --dataset ml-100k --split .gpu/ml-100k.npz \
      --config-dir configs/ml-100k --models sasrec,ksa,elastic --seeds "$ML_SEEDS" --parallel 15 \
      --out-dir runs/final/ml100k --set train.time_limit_s="$ML_S" $common > runs/final_ml100k.log 2>&1 &
  fi
  if has ml100ksweep; then
    models=$(ls configs/ml-100k/sweep-$ML_ROUND | sed "s/.yaml$//" | paste -sd, -)
    python3 benchmarks/seqrec.py run --name sweep_ml100k_$ML_ROUND --dataset ml-100k --split .gpu/ml-100k.npz \
      --config-dir configs/ml-100k/sweep-$ML_ROUND --models "$models" --seeds "$ML_SEEDS" --parallel "$ML_PAR" \
      --out-dir runs/final/ml100k_$ML_ROUND --set train.time_limit_s="$ML_S" $common \
      > runs/final_ml100k_$ML_ROUND.log 2>&1 \
      && python3 benchmarks/select_configs.py --sweep benchmarks/results/sweep_ml100k_$ML_ROUND.json \
        --families sasrec,ksa,elastic --name longseq_ml100k --no-rebuild >> runs/final_ml100k_$ML_ROUND.log 2>&1 &
  fi
  if has mlssweep; then
    python3 benchmarks/seqrec.py run --name "$MLS_NAME" --dataset ml-latest-small \
      --split .gpu/ml-latest-small.npz --config-dir "$MLS_DIR" --models "$MLS_MODELS" --seeds "$MLS_SEEDS" \
      --parallel "$MLS_PAR" --out-dir runs/final/mls --set train.time_limit_s="$MLS_S" $common \
      > runs/final_mls.log 2>&1 &
  fi
  wait
  if has speed && [ "$SPEED_LAST" = 1 ]; then speed; fi
  echo done > runs/final.done' > runs/final.log 2>&1 < /dev/null &
wait_then_copy runs/final.done "${FIRST_WAIT_S:-30}"
