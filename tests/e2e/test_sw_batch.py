"""Scoring several sliding windows per forward pass changes speed only: the formal evaluation of the
shipped fixture gives the same Dice and the same saved predictions, voxel for voxel, at 1 and at the
CPU plan's batch size (benchmarks/sw_batch_bench.py measures the speed)."""
from __future__ import annotations

import io
import json
from pathlib import Path

import nibabel
import numpy as np
import pytest

from nvseg_bench.evidence.collect import per_case_dice
from nvseg_bench.phases.runner import PhaseSpec, bundle_command, bundle_env, command_prefix, run_phase
from nvseg_bench.planning.plan import CPU_SW_BATCH

from ..helpers import FIXTURE, REPO

pytestmark = pytest.mark.slow
MICRO = REPO / "fixtures" / "micro_model"


def _evaluate(out: Path, sw_batch_size: int) -> Path:
    configs = REPO / "bundle" / "configs"
    stack = [configs / "train.json", configs / "train_continual.json", configs / "evaluate.json", MICRO / "network.json"]
    values = {"dataset_dir": str(FIXTURE), "data_list_file_path": str(FIXTURE / "datalist.json"), "fold": "0",
              "label_mappings": json.dumps({"default": [[1, 3]]}), "patch_size": "[64, 64, 64]",
              "patch_size_valid": "[64, 64, 64]", "sw_overlap": "0.25", "drop_label_prob": "0.0", "drop_point_prob": "1.0",
              "sw_batch_size": str(sw_batch_size), "ckpt_path": str(MICRO / "model.pt"), "output_dir": str(out)}
    cmd = bundle_command(command_prefix(1), [str(p) for p in stack], REPO / "bundle", values)
    out.mkdir(parents=True)
    result = run_phase(PhaseSpec("eval", 1, 1, cmd, out / "eval.log"), cwd=out, env=bundle_env(REPO / "bundle"),
                       stream=io.StringIO())
    assert result.return_code == 0, "\n".join(result.log_tail)
    return out


def test_the_cpu_sliding_window_batch_leaves_dice_and_predictions_unchanged(tmp_path):
    one, batched = _evaluate(tmp_path / "one", 1), _evaluate(tmp_path / "batched", CPU_SW_BATCH)
    assert per_case_dice(one) and per_case_dice(one) == per_case_dice(batched)
    first, second = sorted(one.rglob("*_seg.nii.gz")), sorted(batched.rglob("*_seg.nii.gz"))
    assert first and [p.name for p in first] == [p.name for p in second]
    for a, b in zip(first, second):
        assert np.array_equal(np.asanyarray(nibabel.load(a).dataobj), np.asanyarray(nibabel.load(b).dataobj))
