#!/usr/bin/env bash
# Install RecBole 1.2.1 as an external baseline, apart from the project's own environment.
#
#   bash benchmarks/recbole/setup.sh
#       # .venv-recbole at the repo root: Python 3.11, torch 2.13.0 (CPU), RecBole and its pins
#   bash benchmarks/recbole/setup.sh --target DIR [--wheels DIR]
#       # into DIR for a Python that already has torch (the GPU machine: Python 3.12, torch 2.11
#       # CUDA); run with PYTHONPATH=DIR. With --wheels .whl-recbole it installs offline from the
#       # wheels download_wheels.sh fetched (cp312); without, from the package index.
#
# Idempotent: re-running leaves a complete install as it is. Why these pins (checked by running):
# - recbole==1.2.1 without its dependency list: that list asks for ray<=2.6.3, thop, plotly, tabulate,
#   tensorboard and psutil, which only RecBole's quick_start (imports ray), hyper-parameter tuning and
#   FLOP counting (thop) import; run_sasrec.py never imports them.
# - numpy<2 (1.26.4): recbole/config/configurator.py aliases np.float = np.float_ (gone in numpy 2).
# - pandas<2.3 (2.2.3): with pandas 3, Dataset._remap fails on token_seq fields ("Length of values (1)
#   does not match length of index") because Series.agg(len) aggregates instead of mapping.
# - colorlog==4.7.2, colorama (recbole/utils/logger.py), texttable (recbole/utils/utils.py), scipy,
#   tqdm, pyyaml, scikit-learn (recbole/evaluator/metrics.py) are imported with the trainer.
# - tensorboard is not installed: run_sasrec.py gives RecBole a no-op torch.utils.tensorboard.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TORCH_VERSION="2.13.0"
PINNED=("recbole==1.2.1" "numpy==1.26.4" "pandas==2.2.3" "pytz" "tzdata" "colorlog==4.7.2" "texttable")
COMMON=("scipy" "scikit-learn" "tqdm" "pyyaml" "colorama==0.4.4")
# pip's noise here: the local index's missing folders, and RecBole's unmet optional requirements.
quiet() { "$@" 2> >(grep -v -E "Location 'file:|dependency resolver does not|^recbole 1.2.1 requires" >&2); }

target=""
wheels=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --target) target="$2"; shift 2 ;;
    --wheels) wheels="$2"; shift 2 ;;
    -h|--help) sed -n 2,21p "$0"; exit 0 ;;
    *) echo "setup.sh: unknown argument '$1' (expected --target DIR, --wheels DIR)" >&2; exit 2 ;;
  esac
done

check() {  # import what run_sasrec.py imports, print the versions
  "$1" "$ROOT/benchmarks/recbole/run_sasrec.py" --check-install
}

if [[ -n "$target" ]]; then
  PY="${PYTHON:-python3}"
  "$PY" -c "import torch" || { echo "setup.sh --target: $PY has no torch; install torch first" >&2; exit 1; }
  mkdir -p "$target"
  if [[ -n "$wheels" ]]; then
    # Offline, every wheel of the folder, no resolution (download_wheels.sh chose one version of each).
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$target" "$wheels"/*.whl
  else
    missing=()
    for spec in "${COMMON[@]}"; do
      mod="${spec%%[<=>]*}"
      case "$mod" in pyyaml) mod=yaml ;; scikit-learn) mod=sklearn ;; esac
      "$PY" -c "import $mod" 2>/dev/null || missing+=("$spec")
    done
    # RecBole without its dependency list; the pins and whatever the Python lacks with theirs.
    quiet "$PY" -m pip install -q --no-deps --upgrade --target "$target" "${PINNED[0]}"
    quiet "$PY" -m pip install -q --upgrade --target "$target" "${PINNED[@]:1}" "${missing[@]}"
  fi
  PYTHONPATH="$target${PYTHONPATH:+:$PYTHONPATH}" check "$PY"
  echo "installed into $target: run with PYTHONPATH=$target"
  exit 0
fi

VENV="$ROOT/.venv-recbole"
if [[ ! -x "$VENV/bin/python" ]]; then
  "${PYTHON:-python3.11}" -m venv "$VENV"
fi
if "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(not (m.version('torch').startswith('$TORCH_VERSION') \
    and m.version('recbole') == '1.2.1' and m.version('numpy') == '1.26.4' and m.version('pandas') == '2.2.3'))" 2>/dev/null \
    && check "$VENV/bin/python" >/dev/null 2>&1; then
  echo "already set up: $VENV"; check "$VENV/bin/python"; exit 0
fi
# torch first (pip's configuration here offers a local CPU build), RecBole without its dependency
# list, then the dependencies it imports, torch pinned so that nothing replaces it.
quiet "$VENV/bin/python" -m pip install -q "torch==$TORCH_VERSION"
quiet "$VENV/bin/python" -m pip install -q --no-deps "${PINNED[0]}"
quiet "$VENV/bin/python" -m pip install -q "${PINNED[@]:1}" "${COMMON[@]}" "torch==$TORCH_VERSION"
check "$VENV/bin/python"
echo "ready: $VENV (run benchmarks/recbole/run_sasrec.py with $VENV/bin/python)"
