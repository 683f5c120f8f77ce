#!/usr/bin/env bash
# satbench on one GPU in ≤ 8 minutes (issue 17): the benchmark workloads at GPU scale against a
# PyTorch loop and torch.func.vmap on the same device, % of the float32 peak, device memory, and
# schoenholz2017 at its full profile. Writes report.md and report.json to $OUT (when set) or
# benchmarks/results/gpu-<scale>/. See benchmarks/README.md, "benchmarks/gpu.sh".
#
#   bash benchmarks/gpu.sh [--tiny] [--no-install] [options of python -m benchmarks.gpu]
#
# --tiny (or SATBENCH_GPU_SCALE=tiny): the smoke grids, end to end on a CPU in minutes.
# --no-install: skip `pip install --no-deps` (use the checkout from PYTHONPATH only).
# PYTHON picks the interpreter (default python3). Nothing is downloaded: satbench is installed
# without dependencies over the machine's own JAX, Flax, optax, pandas...; missing ones are
# named, one line each, by the Python side.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
SCALE=${SATBENCH_GPU_SCALE:-gpu}
INSTALL=1
DEST=
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --tiny) SCALE=tiny ;;
    --no-install) INSTALL=0 ;;
    --out) DEST=$2; shift ;;
    --out=*) DEST=${1#--out=} ;;
    *) ARGS+=("$1") ;;
  esac
  shift
done
DEST=${DEST:-${OUT:-benchmarks/results/gpu-$SCALE}}
mkdir -p "$DEST"
echo "[$(date +%H:%M:%S)] gpu.sh: $("$PY" -V 2>&1) at $(command -v "$PY"), scale $SCALE, out $DEST"
if [ "$INSTALL" = 1 ]; then
  # --no-build-isolation: building in isolation would fetch setuptools from PyPI
  if "$PY" -m pip install --no-deps --no-build-isolation -e . >"$DEST/pip.log" 2>&1; then
    echo "[$(date +%H:%M:%S)] pip install --no-deps -e . done"
  else
    why=$(grep -m 1 -iE "error: |error$" "$DEST/pip.log" || tail -n 1 "$DEST/pip.log")
    echo "[$(date +%H:%M:%S)] pip install --no-deps -e . FAILED (see $DEST/pip.log): $why"
    echo "                running satbench from the checkout on PYTHONPATH instead"
  fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" -m benchmarks.gpu --scale "$SCALE" --out "$DEST" ${ARGS[@]+"${ARGS[@]}"}
