#!/usr/bin/env bash
# On the lent GPU machine, from the repo root: install the carried pure-Python wheels (.whl/), run
# benchmarks/gpu_check.py with the full-size model, and bring back (under $OUT) the summary, the
# console log and one evidence archive: every run's output.json, report, logs and plots, without
# checkpoints or volumes (the dataset and checkpoints stay in /tmp: too large to send back).
# Its numpy 2.x and torch 2.11 differ from the project's pins: NVSEG_ALLOW_VERSION_DRIFT=1 runs
# anyway and records the drift in each run's plan.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check_out}
WORK=${GPU_CHECK_WORK:-/tmp/gpu_check_work}
mkdir -p "$OUT" "$WORK"
if compgen -G ".whl/*.whl" > /dev/null; then
  "${PYTHON:-python3}" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD NVSEG_ALLOW_VERSION_DRIFT=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv > "$OUT/gpu.csv" 2>&1
"${PYTHON:-python3}" -c "import torch, numpy, monai, ignite; print('torch', torch.__version__, 'numpy', numpy.__version__, 'monai', monai.__version__, 'ignite', ignite.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | tee "$OUT/versions.txt"
"${PYTHON:-python3}" benchmarks/gpu_check.py --work "$WORK" --summary "$OUT/gpu_check_summary.json" --workers 16 "$@" 2>&1 | tee "$OUT/gpu_check.log"
code=${PIPESTATUS[0]}
# logs and evidence, not weights or volumes; two folders deep at most on the way back, so one archive
tar -czf "$OUT/evidence.tar.gz" -C "$WORK" --exclude='*.pt' --exclude='*.nii.gz' --exclude='*.nii' \
  --exclude='xdg_cache' --exclude=lung_synthetic --exclude='preprocess_cache' . 2>/dev/null
ls -la "$OUT"
exit "$code"
