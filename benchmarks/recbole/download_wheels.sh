#!/usr/bin/env bash
# Download the wheels RecBole 1.2.1 needs on the GPU machine (Python 3.12, x86-64, torch preinstalled,
# no network) into .whl-recbole/ at the repo root, to be carried there and installed offline:
#
#   bash benchmarks/recbole/download_wheels.sh            # the few the GPU image lacks (~15 MB)
#   bash benchmarks/recbole/download_wheels.sh --full     # also scipy, scikit-learn, ... for a bare Python
#   # there:  bash benchmarks/recbole/setup.sh --target /tmp/recbole-site --wheels .whl-recbole
#   #         PYTHONPATH=/tmp/recbole-site python3 benchmarks/recbole/run_sasrec.py --data ...
#
# The default set, checked against the GPU image's package list (KINDS.md, 2026-11) and RecBole's
# run-time imports (recbole.config / data / model / trainer / evaluator / utils):
# - recbole==1.2.1 (pure Python), installed without its dependency list (see setup.sh).
# - pandas==2.3.3 (+ pytz, tzdata): pandas 3 breaks RecBole's token_seq remapping
#   (Series.agg(len) aggregates in pandas 3: "Length of values (1) does not match length of index").
# - NOT numpy<2: the image's scipy (imported by RecBole and scikit-learn) needs numpy >= 2 (with 1.26.4
#   it fails at import on np.long), and an older scipy + scikit-learn + numpy would not fit the 64 MiB
#   carry limit. RecBole 1.2.1's only numpy-2 break is its alias block (np.float_, np.complex_,
#   np.unicode_), which run_sasrec.py defines before importing RecBole.
# - colorlog==4.7.2, texttable: imported by recbole.utils, absent from the image.
# Already in the image and used as they are: torch, scipy, scikit-learn, tqdm, pyyaml, colorama,
# python-dateutil, six. Not needed: tensorboard (run_sasrec.py installs a no-op writer), ray, thop,
# plotly, tabulate, hyperopt (RecBole's quick_start / tuning / FLOP counting only).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEST="$ROOT/.whl-recbole"
WHEELS=("recbole==1.2.1" "pandas==2.3.3" "pytz" "tzdata" "colorlog==4.7.2" "texttable")
if [[ "${1:-}" == "--full" ]]; then
  WHEELS+=("scipy" "scikit-learn" "joblib" "cloudpickle" "narwhals" "threadpoolctl" "tqdm" "pyyaml" "colorama==0.4.4"
           "python-dateutil" "six")
elif [[ $# -gt 0 ]]; then
  echo "download_wheels.sh: unknown argument '$1' (expected --full)" >&2; exit 2
fi

mkdir -p "$DEST"
rm -f "$DEST"/*.whl  # one version of each: an offline install of two versions of a package fails
PY="${PYTHON:-python3}"
# --no-deps: exactly this list (one version of each), so nothing drags in torch, ray or tensorboard.
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
  -d "$DEST" "${WHEELS[@]}" 2> >(grep -v "Location 'file:" >&2)
ls -1 "$DEST"
du -sh "$DEST"
