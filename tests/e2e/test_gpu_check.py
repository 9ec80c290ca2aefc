"""The GPU check script, rehearsed on the CPU with the micro model and small volumes.

The sanity step needs a GPU (the harness skips it without one) and the oom step a GPU's memory, so
the rehearsal runs the user run and the by-hand bundle runs, the parts that can run here.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ..helpers import REPO

pytestmark = pytest.mark.slow


def test_gpu_check_rehearsal_reports_the_user_run_and_the_bundle_by_hand(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--work", str(tmp_path), "--micro",
                           "--cases", "10", "--val-cases", "2", "--size", "96", "--slices", "40", "48", "--epochs", "1",
                           "--workers", "2", "--steps", "user,by_hand"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    summary = json.loads((tmp_path / "gpu_check_summary.json").read_text())
    user, hand = summary["steps"]["user"], summary["steps"]["by_hand"]
    # a user finetune (the data dir is not Task06-named), on the CPU: the plan's 64^3, finetune phase only
    assert user["exit"] == 0 and user["status"] == "passed" and user["patch_size"] == [64, 64, 64]
    assert set(user["phase_seconds"]) == {"finetune"} and user["iterations_per_second"] > 0
    assert user["expected_peak_gpu_mb"] is None  # no GPU, no expectation
    assert hand["complete"] and set(hand["phases"]) == {"eval_pretrained", "finetune", "eval_finetuned"}
    assert all(p["startup_s"] is not None for p in hand["phases"].values())
    assert (tmp_path / "by_hand" / "checkpoints" / "model_finetune.pt").is_file()


def test_the_by_hand_runs_spell_booleans_as_fire_reads_them(tmp_path):
    # `monai.bundle run` parses command-line values with fire: "false" stays a string, and `not @x` of it is
    # False, so a by-hand run kept upstream's TensorBoard handler (and the GPU check its lr schedule) on
    from fire.parser import DefaultParseValue

    sys.path.insert(0, str(REPO / "benchmarks"))
    from gpu_check import BY_HAND_RECIPE
    from bench_common import hand_values

    values = hand_values(tmp_path, tmp_path / "datalist.json", 64, BY_HAND_RECIPE)
    parsed = {key: DefaultParseValue(text) for key, text in values.items()}
    assert parsed["use_tensorboard"] is False and parsed["use_mlflow"] is False
    assert parsed["lr_schedule#activate"] is False and parsed["val_at_start"] is True
    assert not [key for key, text in values.items() if text.lower() in ("true", "false") and not isinstance(parsed[key], bool)]
