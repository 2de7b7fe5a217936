#!/usr/bin/env bash
# Install RecBole 1.2.1 as an external baseline, apart from the project's own environment.
#
#   bash benchmarks/recbole/setup.sh                      # .venv-recbole at the repo root (CPU, Python 3.11)
#   bash benchmarks/recbole/setup.sh --target DIR [--wheels DIR]
#       # into DIR for an existing Python that already has torch (the GPU machine: Python 3.12,
#       # torch 2.11 CUDA); then run with PYTHONPATH=DIR. --wheels installs offline from the folder
#       # filled by download_wheels.sh (default .whl-recbole when it exists).
#
# Idempotent: an existing .venv-recbole with the same pins is left as it is. Why these pins:
# - recbole==1.2.1 is installed with --no-deps: its metadata asks for ray<=2.6.3, thop, plotly,
#   tabulate, tensorboard and psutil, which only its quick_start / hyper-parameter tuning / FLOP
#   counting import (recbole/quick_start/quick_start.py imports ray, utils.get_flops imports thop).
#   run_sasrec.py never imports those modules.
# - numpy<2: recbole/config/configurator.py aliases np.float = np.float_ (gone in numpy 2) and its
#   metrics use np.float / np.bool.
# - colorlog==4.7.2 and colorama (recbole/utils/logger.py), texttable (recbole/utils/utils.py),
#   scipy, pandas, tqdm, pyyaml, scikit-learn (recbole/evaluator/metrics.py imports sklearn.metrics)
#   are imported whenever the trainer is.
# - tensorboard is NOT installed: recbole/utils/utils.py imports torch.utils.tensorboard at import
#   time, and run_sasrec.py replaces that module by a no-op writer (the harness logs to JSON).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TORCH_VERSION="2.13.0"
RECBOLE="recbole==1.2.1"
# Runtime imports of recbole.config/data/model/trainer/evaluator (see above), numpy pinned below 2.
DEPS=("numpy<2" "scipy" "pandas" "tqdm" "pyyaml" "scikit-learn" "colorlog==4.7.2" "colorama" "texttable")

target=""
wheels=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --target) target="$2"; shift 2 ;;
    --wheels) wheels="$2"; shift 2 ;;
    -h|--help) sed -n 2,25p "$0"; exit 0 ;;
    *) echo "setup.sh: unknown argument '$1' (expected --target DIR, --wheels DIR)" >&2; exit 2 ;;
  esac
done

if [[ -n "$target" ]]; then
  # Into DIR for the Python on PATH, torch taken from that Python. Only what it lacks (or has in a
  # version RecBole cannot use, numpy >= 2) goes into DIR, which then shadows it on PYTHONPATH.
  PY="${PYTHON:-python3}"
  if [[ -z "$wheels" && -d "$ROOT/.whl-recbole" ]]; then wheels="$ROOT/.whl-recbole"; fi
  "$PY" -c "import torch" || { echo "setup.sh --target: $PY has no torch; install torch first" >&2; exit 1; }
  mkdir -p "$target"
  if [[ -n "$wheels" ]]; then
    # Offline: every wheel in the folder, no resolution (download_wheels.sh chose them for cp312).
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$target" "$wheels"/*.whl
  else
    missing=()
    for spec in "${DEPS[@]}"; do
      mod="$spec"; mod="${mod%%[<=>]*}"
      case "$mod" in pyyaml) mod=yaml ;; scikit-learn) mod=sklearn ;; esac
      if [[ "$mod" == numpy ]]; then
        "$PY" -c "import numpy, sys; sys.exit(int(numpy.__version__.split('.')[0]) >= 2)" || missing+=("$spec")
      elif [[ "$spec" == colorlog==* ]]; then
        "$PY" -c "import colorlog" 2>/dev/null || missing+=("$spec")
      else
        "$PY" -c "import $mod" 2>/dev/null || missing+=("$spec")
      fi
    done
    "$PY" -m pip install -q --no-deps --upgrade --target "$target" "$RECBOLE" "${missing[@]}"
  fi
  PYTHONPATH="$target${PYTHONPATH:+:$PYTHONPATH}" "$PY" -c \
    "import numpy, torch, recbole.trainer, recbole.data; print('recbole', recbole.__version__, 'numpy', numpy.__version__, 'torch', torch.__version__)" 2>&1 \
    | grep -v "tensorboard" || true
  echo "installed into $target: run with PYTHONPATH=$target"
  exit 0
fi

VENV="$ROOT/.venv-recbole"
PY311="${PYTHON:-python3.11}"
if [[ ! -x "$VENV/bin/python" ]]; then
  "$PY311" -m venv "$VENV"
fi
# torch first (a CPU build from the local wheel folder when pip's configuration offers one), then
# RecBole without its dependency list, then the dependencies it really imports.
"$VENV/bin/python" -m pip install -q "torch==$TORCH_VERSION"
"$VENV/bin/python" -m pip install -q --no-deps "$RECBOLE"
"$VENV/bin/python" -m pip install -q "${DEPS[@]}" "torch==$TORCH_VERSION"
"$VENV/bin/python" -c "import numpy, torch, recbole; print('recbole', recbole.__version__, 'numpy', numpy.__version__, 'torch', torch.__version__)"
echo "ready: $VENV (run benchmarks/recbole/run_sasrec.py with $VENV/bin/python)"
