"""A seed sweep run for real: three smoke finetunes in one command, one shared pretrained evaluation, one
pretrained forgetting pass (kept: phases/eval_memo.py), a later identical run that runs no pretrained pass, and
the same sweep with two seeds side by side (--parallel 2) reporting the same figures."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ..helpers import REPO


@pytest.mark.slow
def test_a_three_seed_smoke_sweep_runs_in_one_command(tmp_path):
    out = tmp_path / "sweep"
    common = [sys.executable, "-m", "nvseg_bench", str(REPO / "fixtures" / "spleen_micro"), "--smoke", "--epochs", "1",
              "--forgetting-check", "liver,aorta", "--preprocess-cache", str(tmp_path / "cache")]
    run = subprocess.run([*common, "--seeds", "0,1,2", "--output-dir", str(out)],
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
    # the pretrained forgetting pass ran once: seeds 1 and 2 took seed 0's, by its key
    reused = [d["runtime"]["reused_phases"] for d in docs]
    assert "forget_pretrained" not in reused[0] and reused[1]["forget_pretrained"] == reused[2]["forget_pretrained"]
    assert all(d["output"]["forgetting"] for d in docs)
    # a second identical run on the same data runs no pass over the pretrained checkpoint
    again = subprocess.run([*common, "--seed", "0", "--output-dir", str(tmp_path / "again")],
                           capture_output=True, text=True, cwd=REPO, timeout=1800)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    doc = json.loads((tmp_path / "again" / "output.json").read_text())
    assert set(doc["runtime"]["reused_phases"]) == {"eval_pretrained", "forget_pretrained"}
    assert "pretrained passes kept: eval_pretrained" in " ".join(doc["plan"]["rationale"])
    assert doc["output"]["formal_pretrained_per_case"] == docs[0]["output"]["formal_pretrained_per_case"]
    # the same sweep with two seeds side by side (--parallel 2: one core each) reports the same figures
    par = subprocess.run([*common, "--seeds", "0,1,2", "--parallel", "2", "--output-dir", str(tmp_path / "par")],
                         capture_output=True, text=True, cwd=REPO, timeout=1800)
    assert par.returncode == 0, par.stdout[-2000:] + par.stderr[-2000:]
    side = [json.loads((tmp_path / "par" / f"seed-{s}" / "output.json").read_text()) for s in (0, 1, 2)]
    assert [d["output"]["formal_finetuned_per_case"] for d in side] == [d["output"]["formal_finetuned_per_case"] for d in docs]
    assert json.loads((tmp_path / "par" / "sweep.json").read_text())["formal_gain"] == sweep["formal_gain"]
