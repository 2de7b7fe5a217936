# Shared by the detached GPU jobs (sweeps.sh, converge.sh, recbole_ml100k.sh, ctr_ml1m.sh, final_rows.sh):
# source it from the repository root.
export PYTHONUNBUFFERED=1 SHORTLIST_COMMIT="${SHORTLIST_COMMIT:-unknown}" OMP_NUM_THREADS=1 \
  PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
export PYTHONPATH=/tmp/site:$PWD/src
# every result file is also written to runs/results (benchmarks/common.write_result): a later call's
# copy of the working tree replaces benchmarks/results, and with it a file a detached job wrote there
export SHORTLIST_RESULTS_COPY="$PWD/runs/results"

gpu_setup() {  # the wheels the GPU machine lacks, RecBole's virtual site, RecBole's exported splits
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  if [ -d .whl-recbole ]; then  # carried only when a part runs RecBole
    bash benchmarks/recbole/setup.sh --target /tmp/recbole-site --wheels .whl-recbole > /dev/null
    mkdir -p runs/recbole && tar xzf runs/recbole/carry/data.tgz -C runs/recbole
  fi
}

fresh_done() {  # DONE_FILE: call when launching a detached job. A machine still warm from an
  # earlier job keeps its done file, which would end this job's waits at once (converge.sh did,
  # 2026-11-30); each launch removes only its own, so jobs sharing a call keep theirs.
  mkdir -p "$(dirname "$1")" && rm -f "$1"
}

wait_then_copy() {  # DONE_FILE SECONDS: wait for the detached job (at most SECONDS), then copy_out;
  # POLL_S: seconds between looks at DONE_FILE (10; the tests use less)
  local end=$((SECONDS + ${2:-540}))
  while [ ! -f "$1" ] && [ $SECONDS -lt $end ]; do sleep "${POLL_S:-10}"; done
  ls "$1" 2>/dev/null
  copy_out
}

copy_synthetic_full() {  # LOG...: the planted split's runs (runs/synthetic_full) into $OUT/all.tgz,
  # then the named logs' tails (round11b.sh, round11c.sh)
  tar czf "$OUT/all.tgz" runs/results runs/*.log runs/synthetic_full/logs \
    runs/synthetic_full/*/results.json runs/synthetic_full/*/ranks.npz 2>/dev/null
  tail -n 3 "$@" 2>/dev/null
}

round_preamble() {  # DONE_FILE "$@": a detached round's start. With `--wait S` as its arguments,
  # wait for DONE_FILE (at most S seconds), copy_out and exit; otherwise install the wheels once per
  # machine and remove DONE_FILE for the new launch (round11b.sh, round11c.sh)
  local done_file="$1"
  shift
  if [ "${1:-}" = "--wait" ]; then wait_then_copy "$done_file" "${2:-540}"; exit 0; fi
  [ -d /tmp/site ] || gpu_setup
  mkdir -p runs/results
  fresh_done "$done_file"
}

synthetic_sweep() {  # NAME MODELS: the planted split's sweep of MODELS x SYN_SEEDS (SYN_S a training-time
  # limit) into runs/synthetic_full, on the GPUs CUDA_VISIBLE_DEVICES names (round11.sh, round12.sh;
  # a detached `bash -c` sources this file again to have it)
  python3 benchmarks/seqrec.py run --name "$1" --dataset synthetic-long \
    --split .gpu/synthetic-long.npz --config-dir configs/synthetic --seeds "$SYN_SEEDS" --parallel 9 \
    --models "$2" --out-dir runs/synthetic_full --set train.time_limit_s="$SYN_S" \
    --set train.num_workers=0 --no-rebuild
}
