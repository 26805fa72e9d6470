#!/usr/bin/env bash
# The GPU check of fastadv in one command, offline, on a fresh one-GPU machine (<= 8 min):
#
#   benchmarks/gpu_check.sh OUTDIR                 # on the GPU machine
#   benchmarks/gpu_check.sh OUTDIR --cpu-dry-run   # the same stages, CPU-sized, no GPU
#
# It installs this checkout against the machine's own torch, triton, pybind11 and nvcc
# (pip install --no-build-isolation --no-deps --no-index -e ., which builds the C++ and, where
# nvcc is found, the CUDA module; no network), then runs benchmarks/gpu_check.py: the GPU
# tests, the op benchmarks, the step benchmarks at batch 128 and 512 and a quarter epoch per
# method, each in its own time budget, printing as it goes, and writes OUTDIR/summary.json
# and OUTDIR/summary.md. Exit status: non-zero if the install or any GPU test failed.
# PYTHON picks the interpreter (default: python); FASTADV_CHECK_INSTALL_S the install budget;
# FASTADV_CHECK_SKIP_INSTALL=1 uses the installed fastadv as it is; FASTADV_COMMIT names the
# commit where the checkout has no .git.
set -uo pipefail
OUT=${1:?usage: benchmarks/gpu_check.sh OUTDIR [--cpu-dry-run]}
shift
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
PYTHON=${PYTHON:-python}
cd "$ROOT"

status=0
if [ "${FASTADV_CHECK_SKIP_INSTALL:-0}" = 1 ]; then
    echo "== install: skipped (FASTADV_CHECK_SKIP_INSTALL=1)"
else
    budget=${FASTADV_CHECK_INSTALL_S:-150}
    echo "== install (budget ${budget} s): $PYTHON -m pip install --no-build-isolation --no-deps --no-index -e ."
    start=$(date +%s)
    timeout "$budget" "$PYTHON" -m pip install --no-build-isolation --no-deps --no-index -e . \
        > "$OUT/install.log" 2>&1
    status=$?
    tail -n 5 "$OUT/install.log" | sed 's/^/  [install] /'
    echo "== install: rc $status in $(( $(date +%s) - start )) s"
    if [ "$status" != 0 ]; then
        # e.g. an environment whose setuptools lacks bdist_wheel (no `wheel` package): build
        # the modules in place and run from the source tree instead
        echo "== install failed; building in place: $PYTHON setup.py build_ext --inplace"
        timeout "$budget" "$PYTHON" setup.py build_ext --inplace >> "$OUT/install.log" 2>&1
        status=$?
        tail -n 3 "$OUT/install.log" | sed 's/^/  [install] /'
        echo "== build in place: rc $status"
        export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
    fi
fi
"$PYTHON" benchmarks/gpu_check.py --out "$OUT" --install-status "$status" "$@"
