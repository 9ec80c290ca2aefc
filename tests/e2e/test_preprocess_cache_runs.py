"""The preprocessing cache on real smoke runs: no reported number moves, a damaged entry is rebuilt,
and an unwritable cache dir falls back to running without one."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel
import numpy as np
import pytest

from nvseg_bench.evidence.collect import per_case_dice

from ..helpers import FIXTURE, REPO

SMOKE = ["--smoke", "--epochs", "1"]


def _run(out: Path, *flags: str, env: dict[str, str] | None = None) -> dict:
    cmd = [sys.executable, "-m", "nvseg_bench", str(FIXTURE), *SMOKE, "--output-dir", str(out), *flags]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1800, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((out / "output.json").read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    """A cold cache, no cache (and phases started cold, not forked from the warm-start server), then the warm
    cache with one entry damaged in between."""
    root = tmp_path_factory.mktemp("runs")
    cache = root / "cache"
    found = {"cold": (root / "cold", _run(root / "cold", "--preprocess-cache", str(cache)))}
    found["off"] = (root / "off", _run(root / "off", "--no-preprocess-cache", env=os.environ | {"NVSEG_WARM_START": "0"}))
    entry = sorted(cache.rglob("evaluate/*.pt"))[0]
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    found["warm"] = (root / "warm", _run(root / "warm", "--preprocess-cache", str(cache)))
    return found


@pytest.mark.slow
def test_formal_and_per_case_dice_are_the_same_with_a_cold_cache_a_warm_one_and_none(runs):
    starts = {name: set(doc["runtime"]["warm_start"]["phases"].values()) for name, (_, doc) in runs.items()}
    assert starts == {"cold": {"warm"}, "off": {"cold"}, "warm": {"warm"}}  # forked phases give the same numbers too
    numbers = {}
    for name, (out, doc) in runs.items():
        o = doc["output"]
        numbers[name] = (o["formal_pretrained_val_dice"], o["formal_finetuned_val_dice"], o["val_dice_per_epoch"],
                         per_case_dice(out / "eval_pretrained"), per_case_dice(out / "eval_finetuned"))
    assert numbers["cold"] == numbers["off"] == numbers["warm"]


@pytest.mark.slow
def test_saved_predictions_are_the_same_voxels_on_the_same_grid_with_and_without_the_cache(runs):
    for phase in ("eval_pretrained", "eval_finetuned"):
        for pred in sorted((runs["off"][0] / phase).glob("*_seg.nii.gz")):
            plain = nibabel.load(pred)
            for name in ("cold", "warm"):
                cached = nibabel.load(runs[name][0] / phase / pred.name)
                assert np.array_equal(np.asarray(cached.dataobj), np.asarray(plain.dataobj)), (name, pred.name)
                assert np.allclose(cached.affine, plain.affine), (name, pred.name)


@pytest.mark.slow
def test_a_second_run_reads_the_entries_the_first_wrote(runs):
    cold, warm = runs["cold"][1]["runtime"]["preprocess_cache"], runs["warm"][1]["runtime"]["preprocess_cache"]
    assert cold["misses"] == sum(c["needed"] for c in cold["per_chain"].values()) and cold["hits"] == 0
    assert warm["hits"] == cold["misses"] - 1 and warm["bytes"] > 0


@pytest.mark.slow
def test_a_damaged_entry_is_rebuilt_and_the_run_passes(runs):
    warm = runs["warm"][1]
    assert warm["status"] == "passed"
    cache = warm["runtime"]["preprocess_cache"]
    assert cache["rebuilt_bad_entries"] == 1 and cache["per_chain"]["evaluate"]["misses"] == 1


def test_an_unwritable_cache_dir_falls_back_with_a_warning(tmp_path):
    (tmp_path / "a_file").write_text("")
    cmd = [sys.executable, "-m", "nvseg_bench", str(FIXTURE), *SMOKE, "--output-dir", str(tmp_path / "out"),
           "--preprocess-cache", str(tmp_path / "a_file" / "cache"), "--dry-run"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "warning: the preprocess cache dir" in proc.stderr
    doc = json.loads((tmp_path / "out" / "output.json").read_text())
    block = doc["runtime"]["preprocess_cache"]
    assert not block["enabled"] and "cannot be written" in block["note"]
    assert not any("preprocess_cache" in f for f in doc["invocation"]["eval_config_stack"])


@pytest.mark.slow
def test_a_later_run_on_the_same_cache_reuses_the_pretrained_evaluation(runs):
    """eval_memo.py: the damaged-entry run scores the same checkpoint on the same cases, so it takes the
    first run's evaluation; the numbers above are the same either way."""
    assert list(runs["warm"][1]["runtime"]["reused_phases"]) == ["eval_pretrained"]
    assert not runs["cold"][1]["runtime"]["reused_phases"] and not runs["off"][1]["runtime"]["reused_phases"]
    assert (runs["warm"][0] / "logs" / "eval_pretrained.log").read_text() == \
        (runs["cold"][0] / "logs" / "eval_pretrained.log").read_text()
