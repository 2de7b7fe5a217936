#!/usr/bin/env bash
# Issue 3's comparisons trained to convergence, and issue 4's Beauty rows from the same run, in one
# lease of about 25 minutes over back-to-back calls. PARTS picks what runs (default all three):
# - speed: the speed table ALONE on the GPU first (benchmarks/gpu/longseq_speed.sh, KSA_BLOCK) and a
#   profile of compiled ELASTIC at L = 16k (PROFILE=0 leaves it out);
# - ml100k (HSTU protocol), detached: RecBole 1.2.1's SASRec x 3 seeds with --checkpoint
#   runs/rbck/rb_ck_s*.pt (handed back; a later lease that carries runs/rbck resumes them where this
#   one stopped: RecBole needs about 38 s an epoch here, alone) and ours beside them, the frozen
#   configs/ml-100k/{sasrec,hstu}.yaml x 5 seeds;
# - beauty (TIGER protocol), detached: the sweep's best configs by validation (configs/amazon-beauty/
#   sweep: sasrec-d256, sasrec-d256-do6, hstu-d256, hstu-d128, ksa-c4w4, elastic-e16) x 3 seeds,
#   trained until patience stops them (the sweep cut every run at 300 s), BEAUTY_S only as a safety
#   limit; then per family the config with the best mean valid NDCG@10 (benchmarks/select_configs.py)
#   -> seqrec_beauty (sasrec, hstu) and longseq_beauty (sasrec, ksa, elastic). BEAUTY_MODELS runs
#   other sweep configs (new candidates) into their own sweep file BEAUTY_NAME (e.g. sweep_beauty_round6;
#   the default sweep_beauty_converged holds the first round); BEAUTY_PAR runs at once (default 18);
#   the choice reads every benchmarks/results/sweep_beauty_*.json as one (a config in two is an error);
# - mls (issue 4), detached: MovieLens latest-small, configs/ml-latest-small/{sasrec,ksa,elastic}.yaml
#   x 3 seeds until patience (MLS_S only as a safety limit), into runs/mls_converged;
# - mlssweep (issue 4), detached: MovieLens latest-small candidates MLS_MODELS from MLS_DIR
#   (default configs/ml-latest-small/sweep) x MLS_SEEDS (0,1,2), MLS_PAR at once (6), MLS_S a safety
#   limit, into their own sweep file MLS_NAME, runs/mls_sweep;
# - hstu100k: the second HSTU sweep on ML-100k, configs/ml-100k/sweep-hstu x 5 seeds (patience 50,
#   like the frozen config, which is its hstu-d64-do5; HSTU_SEEDS) -> sweep_ml100k_hstu, into runs/hstu100k;
# - synthetic (issue 4): the planted long-range split, made here and carried (polars is not on the
#   machine): python benchmarks/longseq_synthetic.py --out .gpu/synthetic-long.npz (two return events
#   as a cue, the next one the target, 20 extra planted interests a user); full attention at 512 and
#   2,048 vs KSA (chunks of 64 or 8, or hybrid; banded path) and ELASTIC over the whole 10^4-event
#   history (SYN_MODELS picks among them), SYN_SEEDS (2 by default), SYN_S a time limit (400 s stopped most runs after 6-8 epochs), into
#   runs/synthetic -> SYN_NAME (sweep_synthetic_long; a new round names its own file, e.g.
#   sweep_synthetic_long_round2, so the first is not overwritten); per family the config with the best
#   mean valid NDCG@10 over sweep_synthetic_long*.json -> longseq_synthetic (the truncated baseline is
#   the better of 512 and 2,048 on validation).
# GPU memory: a synthetic run takes 10-40 GB (full softmax over 10^4-event histories), an ML-100k one
# about 3.6 GB: 12 synthetic runs beside 18 ML-100k ones ran out of the H200's 140 GB (2026-11-29), so
# lower SYN_SEEDS / HSTU_PAR when parts share a call.
# ML_OURS=0 leaves out our ML-100k runs (when converged ones exist and only RecBole must go on).
# RecBole loses its pace beside any of our runs, even at nice 15 (201 s an epoch beside 9 MovieLens
# latest-small runs, 39 s after them, 2026-11-29): run the ml100k part alone when RecBole must progress.
# Beside 18 Beauty runs RecBole's Python pipeline starves (187 s an epoch, 2026-11-29): run the
# parts in separate leases when RecBole must make progress. Call 1:
#   PARTS="speed beauty" KSA_BLOCK=64 bash benchmarks/gpu/converge.sh
# later calls: `bash benchmarks/gpu/converge.sh --wait SECONDS` until runs/converge.done exists;
# each hands back $OUT/all.tgz. Here: seqrec.py run ... --collect on the unpacked runs (the
# commands are in benchmarks/results/{sweep_beauty_converged,seqrec_ml100k}.json).
# Carry: .whl and the .gpu splits the parts use (all of .gpu with the RecBole wheels is over the
# 64 MiB carry limit); for ml100k also .whl-recbole, runs/recbole/carry and runs/rbck (to resume).
set -u
cd "$(dirname "$0")/../.."
. benchmarks/gpu/lib.sh
copy_out() {  # one tarball: at most 8 files come back from $OUT
  tar czf "$OUT/all.tgz" runs/results runs/prof runs/speed.log runs/*.log runs/rbck \
    runs/*/logs runs/*/*/results.json runs/*/*/ranks.npz 2>/dev/null
  tail -n 2 runs/*.log 2>/dev/null | tail -n 40
}
if [ "${1:-}" = "--wait" ]; then wait_then_copy runs/converge.done "${2:-540}"; exit 0; fi
PARTS=${PARTS:-speed ml100k beauty}
has() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }
gpu_setup
mkdir -p runs/prof runs/results runs/rbck
nvidia-smi --query-gpu=name,memory.used,utilization.gpu --format=csv
if has speed; then
  OUT_FINAL=$OUT; OUT=$(mktemp -d); bash benchmarks/gpu/longseq_speed.sh; OUT=$OUT_FINAL
  if [ "${PROFILE:-1}" = 1 ]; then
    timeout 100 python3 benchmarks/longseq_profile.py --device cuda --out runs/prof --rows 25 --length 16384 \
      --method elastic --compile default > runs/prof/elastic_c.log 2>&1 || echo "profile rc $?"
  fi
fi
export BEAUTY_PAR="${BEAUTY_PAR:-18}" PARTS RB_S="${RB_S:-960}" BEAUTY_S="${BEAUTY_S:-780}" MLS_S="${MLS_S:-900}" ML_OURS="${ML_OURS:-1}" \
  SYN_S="${SYN_S:-900}" SYN_NAME="${SYN_NAME:-sweep_synthetic_long}" HSTU_S="${HSTU_S:-600}" HSTU_SEEDS="${HSTU_SEEDS:-0,1,2,3,4}" \
  HSTU_PAR="${HSTU_PAR:-30}" SYN_SEEDS="${SYN_SEEDS:-0,1}" \
  SYN_MODELS="${SYN_MODELS:-sasrec-long512,sasrec-long2048,ksa-long,ksa-long-c8,ksa-long-hybrid,elastic-long}" \
  BEAUTY_MODELS="${BEAUTY_MODELS:-sasrec-d256,sasrec-d256-do6,hstu-d256,hstu-d128,ksa-c4w4,elastic-e16}" \
  BEAUTY_NAME="${BEAUTY_NAME:-sweep_beauty_converged}" MLS_MODELS="${MLS_MODELS:-ksa-w8,ksa-c16w16}" \
  MLS_NAME="${MLS_NAME:-sweep_mls_ksa}" MLS_DIR="${MLS_DIR:-configs/ml-latest-small/sweep}" \
  MLS_SEEDS="${MLS_SEEDS:-0,1,2}" MLS_PAR="${MLS_PAR:-6}"
fresh_done runs/converge.done
setsid bash -c '
  has() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }
  common="--set train.num_workers=0 --no-rebuild"
  if has ml100k; then
    for s in 0 1 2; do
      PYTHONPATH=/tmp/recbole-site python3 benchmarks/recbole/run_sasrec.py --data runs/recbole/data/ml-100k-hstu-L200 \
        --device cuda --seed $s --time-limit-s "$RB_S" --checkpoint runs/rbck/rb_ck_s$s.pt \
        --out runs/rbck/rb_ml100k_s$s.json > runs/rbck/rb_ml100k_s$s.log 2>&1 &
    done
    [ "$ML_OURS" = 1 ] && python3 benchmarks/seqrec.py run --name seqrec_ml100k_ours --dataset ml-100k --split .gpu/ml-100k.npz \
      --models sasrec,hstu --seeds 0,1,2,3,4 --parallel 4 --out-dir runs/ml_converged \
      --set train.time_limit_s=400 $common > runs/ml_converged.log 2>&1 &
  fi
  if has mls; then
    python3 benchmarks/seqrec.py run --name longseq_mls --dataset ml-latest-small --split .gpu/ml-latest-small.npz \
      --config-dir configs/ml-latest-small --models sasrec,ksa,elastic --seeds 0,1,2 --parallel 9 \
      --out-dir runs/mls_converged --set train.time_limit_s="$MLS_S" $common > runs/mls.log 2>&1 &
  fi
  if has mlssweep; then
    python3 benchmarks/seqrec.py run --name "$MLS_NAME" --dataset ml-latest-small --split .gpu/ml-latest-small.npz \
      --config-dir "$MLS_DIR" --models "$MLS_MODELS" --seeds "$MLS_SEEDS" --parallel "$MLS_PAR" \
      --out-dir runs/mls_sweep --set train.time_limit_s="$MLS_S" $common > runs/mls_sweep.log 2>&1 &
  fi
  if has hstu100k; then
    models=$(ls configs/ml-100k/sweep-hstu | sed "s/.yaml$//" | paste -sd, -)
    python3 benchmarks/seqrec.py run --name sweep_ml100k_hstu --dataset ml-100k --split .gpu/ml-100k.npz \
      --config-dir configs/ml-100k/sweep-hstu --models "$models" --seeds "$HSTU_SEEDS" --parallel "$HSTU_PAR" \
      --out-dir runs/hstu100k --set train.time_limit_s="$HSTU_S" $common > runs/hstu100k.log 2>&1 &
  fi
  if has synthetic; then
    ( python3 benchmarks/seqrec.py run --name "$SYN_NAME" --dataset synthetic-long \
        --split .gpu/synthetic-long.npz --config-dir configs/synthetic --seeds "$SYN_SEEDS" --parallel 12 \
        --models "$SYN_MODELS" \
        --out-dir runs/synthetic --set train.time_limit_s="$SYN_S" $common > runs/synthetic.log 2>&1
      python3 benchmarks/select_configs.py --sweep benchmarks/results/sweep_synthetic_long*.json \
        --families sasrec,ksa,elastic --name longseq_synthetic --no-rebuild >> runs/select.log 2>&1 ) &
  fi
  if has beauty; then
    args=(--name "$BEAUTY_NAME" --dataset amazon-beauty --split .gpu/amazon-beauty.npz
      --config-dir configs/amazon-beauty/sweep --seeds 0,1,2 --out-dir runs/beauty_converged
      --models "$BEAUTY_MODELS"
      --set train.time_limit_s="$BEAUTY_S" $common)
    python3 benchmarks/seqrec.py run "${args[@]}" --parallel "$BEAUTY_PAR" > runs/beauty.log 2>&1 \
      || python3 benchmarks/seqrec.py run "${args[@]}" --collect >> runs/beauty.log 2>&1
    for f in "sasrec,hstu seqrec_beauty" "sasrec,ksa,elastic longseq_beauty"; do set -- $f
      python3 benchmarks/select_configs.py --sweep benchmarks/results/sweep_beauty_*.json \
        --families "$1" --name "$2" --no-rebuild >> runs/select.log 2>&1
    done
  fi
  wait  # every result file is in runs/results already (lib.sh: SHORTLIST_RESULTS_COPY)
  echo done > runs/converge.done' > runs/converge.log 2>&1 < /dev/null &
# FIRST_WAIT_S: this call waits that long at most for the detached job (30 s by default)
wait_then_copy runs/converge.done "${FIRST_WAIT_S:-30}"
