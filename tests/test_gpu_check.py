"""The GPU check script, rehearsed on the CPU with the micro model and small volumes."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .helpers import REPO

pytestmark = pytest.mark.slow


def test_gpu_check_rehearsal_runs_the_sanity_recipe_and_reports_figures(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--out", str(tmp_path),
                           "--micro", "--cases", "6", "--size", "96", "--slices", "40", "48", "--epochs", "1",
                           "--workers", "2"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    summary = json.loads((tmp_path / "gpu_check_summary.json").read_text())
    # random initial weights cannot pass the Task06 gates: exit 4 is the expected outcome
    assert summary["wrapper_exit"] == 4 and summary["return_code"] == 4
    assert set(summary["phase_seconds"]) == {"eval_pretrained", "finetune", "eval_finetuned"}
    assert summary["iterations_per_second"] > 0 and summary["train_iterations"] > 0
