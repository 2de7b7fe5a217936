#!/usr/bin/env bash
# Install RecBole 1.2.1 as an external baseline, apart from the project's own environment.
#
#   bash benchmarks/recbole/setup.sh
#       # .venv-recbole at the repo root: Python 3.11, torch 2.13.0 (CPU), numpy 1.26.4, RecBole + pins
#   bash benchmarks/recbole/setup.sh --target DIR [--wheels DIR]
#       # into DIR for a Python that already has torch and numpy (the GPU machine: Python 3.12,
#       # torch 2.11 CUDA, numpy 2.x); run with PYTHONPATH=DIR. With --wheels .whl-recbole it
#       # installs offline from the wheels download_wheels.sh fetched (cp312); without, from the index.
#       # The Python's own numpy, torch, scipy, scikit-learn are kept (never installed into DIR).
#
# Idempotent: re-running leaves a complete install as it is. Why these pins (checked by running):
# - recbole==1.2.1 without its dependency list: that list asks for ray<=2.6.3, thop, plotly, tabulate,
#   tensorboard and psutil, which only RecBole's quick_start (imports ray), hyper-parameter tuning and
#   FLOP counting (thop) import; run_sasrec.py never imports them.
# - numpy 1.26.4 in .venv-recbole: RecBole's Config runs np.float = np.float_ (and np.complex_,
#   np.unicode_), names numpy 2 removed. In --target mode the Python's numpy 2 stays (its scipy needs
#   it) and run_sasrec.py defines those three aliases; metrics are identical (README.md).
# - pandas==2.3.3: with pandas 3, Dataset._remap fails on token_seq fields ("Length of values (1)
#   does not match length of index") because Series.agg(len) aggregates instead of mapping.
# - colorlog==4.7.2, colorama (recbole/utils/logger.py), texttable (recbole/utils/utils.py), scipy,
#   tqdm, pyyaml, scikit-learn (recbole/evaluator/metrics.py) are imported with the trainer.
# - tensorboard is not installed: run_sasrec.py gives RecBole a no-op torch.utils.tensorboard.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TORCH_VERSION="2.13.0"
NUMPY_VERSION="1.26.4"
PANDAS_VERSION="2.3.3"
PINNED=("recbole==1.2.1" "pandas==$PANDAS_VERSION" "pytz" "tzdata" "colorlog==4.7.2" "texttable")
# Imported by RecBole or by the pins above; in --target mode installed only where the Python lacks them.
COMMON=("scipy" "scikit-learn" "joblib" "cloudpickle" "narwhals" "threadpoolctl" "tqdm" "pyyaml" "colorama==0.4.4" "python-dateutil" "six")
# pip's noise here: the local index's missing folders, and RecBole's unmet optional requirements.
quiet() { "$@" 2> >(grep -v -E "Location 'file:|dependency resolver does not|^recbole 1.2.1 requires" >&2); }

target=""
wheels=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --target) target="$2"; shift 2 ;;
    --wheels) wheels="$2"; shift 2 ;;
    -h|--help) sed -n 2,24p "$0"; exit 0 ;;
    *) echo "setup.sh: unknown argument '$1' (expected --target DIR, --wheels DIR)" >&2; exit 2 ;;
  esac
done

check() {  # import what run_sasrec.py imports, print the versions
  "$1" "$ROOT/benchmarks/recbole/run_sasrec.py" --check-install
}

if [[ -n "$target" ]]; then
  PY="${PYTHON:-python3}"
  "$PY" -c "import torch, numpy" || { echo "setup.sh --target: $PY lacks torch or numpy; install them first" >&2; exit 1; }
  mkdir -p "$target"
  if [[ -n "$wheels" ]]; then
    # Offline, every wheel of the folder, no resolution (download_wheels.sh chose one version of each).
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$target" "$wheels"/*.whl
  else
    missing=()
    for spec in "${COMMON[@]}"; do
      mod="${spec%%[<=>]*}"
      case "$mod" in pyyaml) mod=yaml ;; scikit-learn) mod=sklearn ;; python-dateutil) mod=dateutil ;; esac
      "$PY" -c "import $mod" 2>/dev/null || missing+=("$spec")
    done
    # --no-deps throughout: the Python's numpy and torch must stay the ones its packages were built for.
    quiet "$PY" -m pip install -q --no-deps --upgrade --target "$target" "${PINNED[@]}" "${missing[@]}"
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
    and m.version('recbole') == '1.2.1' and m.version('numpy') == '$NUMPY_VERSION' and m.version('pandas') == '$PANDAS_VERSION'))" \
    2>/dev/null && check "$VENV/bin/python" >/dev/null 2>&1; then
  echo "already set up: $VENV"; check "$VENV/bin/python"; exit 0
fi
# torch first (pip's configuration here offers a local CPU build), RecBole without its dependency
# list, then the dependencies it imports, torch pinned so that nothing replaces it.
quiet "$VENV/bin/python" -m pip install -q "torch==$TORCH_VERSION"
quiet "$VENV/bin/python" -m pip install -q --no-deps "${PINNED[0]}"
quiet "$VENV/bin/python" -m pip install -q "numpy==$NUMPY_VERSION" "${PINNED[@]:1}" "${COMMON[@]}" "torch==$TORCH_VERSION"
check "$VENV/bin/python"
echo "ready: $VENV (run benchmarks/recbole/run_sasrec.py with $VENV/bin/python)"
