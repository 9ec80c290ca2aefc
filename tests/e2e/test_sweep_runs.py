"""A seed sweep run for real: three smoke finetunes in one command, one shared pretrained evaluation."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ..helpers import REPO


@pytest.mark.slow
def test_a_three_seed_smoke_sweep_runs_in_one_command(tmp_path):
    out = tmp_path / "sweep"
    run = subprocess.run([sys.executable, "-m", "nvseg_bench", str(REPO / "fixtures" / "spleen_micro"), "--smoke",
                          "--epochs", "1", "--seeds", "0,1,2", "--output-dir", str(out)],
                         capture_output=True, text=True, cwd=REPO, timeout=1800)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    sweep = json.loads((out / "sweep.json").read_text())
    assert [r["seed"] for r in sweep["runs"]] == [0, 1, 2] and sweep["formal_gain"]["n"] == 3
    docs = [json.loads((out / f"seed-{s}" / "output.json").read_text()) for s in (0, 1, 2)]
    assert [d["input"]["seed"] for d in docs] == [0, 1, 2]
    # one pretrained evaluation, shared: every seed reports the same pretrained scores
    assert len({json.dumps(d["output"]["formal_pretrained_per_case"]) for d in docs}) == 1
    assert len({d["runtime"]["phase_seconds"]["eval_pretrained"] for d in docs}) == 1  # the one evaluation's time
    assert all(d["output"]["formal_gain_stats"]["n_cases"] >= 1 for d in docs)
