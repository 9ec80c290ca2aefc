#!/usr/bin/env bash
# On the lent GPU machine, from the repo root: install the carried pure-Python wheels (.whl/), run
# the GPU check with the full-size model, and leave only the summary and the log under $OUT (the
# dataset and the run stay in /tmp: too many and too large to send back).
set -euo pipefail
cd "$(dirname "$0")/.."
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
OUT=${OUT:-/tmp/gpu_check_out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv" || true
PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py --out /tmp/gpu_check_work --summary "$OUT/gpu_check_summary.json" \
  --workers 16 "$@" 2>&1 | tee "$OUT/gpu_check.log"
cp /tmp/gpu_check_work/run/output.json "$OUT/output.json" 2>/dev/null || true
