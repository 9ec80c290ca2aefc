"""Seed sweeps: assembling sweep.json from per-seed documents, and the rule that recommends a seed.

A real three-seed sweep runs in tests/e2e/test_sweep_runs.py."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from nvseg_bench.inputs.request import parse_seeds
from nvseg_bench.campaign.seeds import assemble, evidence_dir

from ..helpers import REPO


def _doc(gain: float, kept: bool = True, status: str = "passed") -> dict:
    return {"status": status, "output": {
        "formal_pretrained_val_dice": 0.2, "formal_finetuned_val_dice": 0.2 + gain,
        "formal_improvement_over_pretrained": gain, "recommended_is_finetuned": kept,
        "finetuned_ckpt": f"ft-{gain}.pt", "pretrained_ckpt": "pre.pt", "gain_confidence": "clear",
        "formal_gain_stats": {"ci_low": gain - 0.01, "ci_high": gain + 0.01}}}


def _sweep(gains: dict[int, tuple[float, bool]]) -> dict:
    docs = {seed: (_doc(g, kept), Path(f"seed-{seed}/output.json")) for seed, (g, kept) in gains.items()}
    return assemble(docs, Path("/out"))


def test_sweep_reports_mean_min_max_and_std_of_the_gain():
    spread = _sweep({0: (0.10, True), 1: (0.20, True), 2: (0.30, True)})["formal_gain"]
    assert spread["mean"] == pytest.approx(0.2) and spread["min"] == 0.10 and spread["max"] == 0.30
    assert spread["std"] == pytest.approx(0.1)


def test_consistent_gains_recommend_the_median_seed_not_the_best():
    sweep = _sweep({0: (0.30, True), 1: (0.10, True), 2: (0.20, True)})
    assert sweep["recommended_seed"] == 2 and sweep["recommended_ckpt"] == "ft-0.2.pt"


def test_an_even_count_recommends_the_lower_median():
    sweep = _sweep({0: (0.40, True), 1: (0.10, True), 2: (0.20, True), 3: (0.30, True)})
    assert sweep["recommended_seed"] == 2


def test_one_seed_that_did_not_keep_its_checkpoint_keeps_the_pretrained_one():
    sweep = _sweep({0: (0.30, True), 1: (0.0005, False), 2: (0.20, True)})
    assert sweep["recommended_seed"] is None and sweep["recommended_ckpt"] == "pre.pt"
    assert "only 2 of 3 seeds" in sweep["recommendation_reason"]


def test_a_failed_seed_keeps_the_pretrained_checkpoint():
    docs = {0: (_doc(0.3), Path("a")), 1: (_doc(0.2, status="failed"), Path("b"))}
    sweep = assemble(docs, Path("/out"))
    assert sweep["recommended_is_finetuned"] is False and "[1]" in sweep["recommendation_reason"]


def test_one_seed_has_no_standard_deviation():
    assert _sweep({0: (0.1, True)})["formal_gain"]["std"] is None


def test_seed_lists_parse_and_repeats_are_refused():
    assert parse_seeds("0,1, 2") == [0, 1, 2]
    with pytest.raises(argparse.ArgumentTypeError, match="each once"):
        parse_seeds("1,1")


def test_seeds_with_seed_is_refused_before_anything_runs(tmp_path):
    run = subprocess.run([sys.executable, "-m", "nvseg_bench", str(REPO / "fixtures" / "spleen_micro"), "--smoke",
                          "--seeds", "0,1", "--seed", "3", "--output-dir", str(tmp_path / "out")],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert run.returncode == 2 and "--seeds" in run.stderr and not (tmp_path / "out").exists()


def test_a_sweep_that_keeps_pretrained_is_represented_by_its_median_seed():
    sweep = _sweep({0: (0.30, True), 1: (0.0005, False), 2: (0.20, True)})
    assert sweep["representative_seed"] == 2


def test_the_harness_judges_a_sweep_by_its_representative_seed_folder(tmp_path):
    (tmp_path / "seed-4").mkdir()
    (tmp_path / "sweep.json").write_text(json.dumps({"representative_seed": 4}))
    assert evidence_dir(tmp_path) == tmp_path / "seed-4"


def test_a_single_run_is_its_own_evidence_folder(tmp_path):
    (tmp_path / "output.json").write_text("{}")
    assert evidence_dir(tmp_path) == tmp_path
