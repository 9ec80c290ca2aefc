"""Staged configs: the override and no-logging files under OUT/configs and the config stacks they join."""
from __future__ import annotations

import json
from pathlib import Path

from nvseg_bench.inputs.request import Request
from nvseg_bench.inputs.resolve import resolve
from nvseg_bench.planning.plan import make_plan
from nvseg_bench.stage.configs import override_values, stage

from ...helpers import REPO

BUNDLE = REPO / "bundle"


def _plan(multi_gpu: bool = False):
    env = {"cuda_available": multi_gpu, "gpu_count": 2 if multi_gpu else 0, "gpu_free_mb": 40000,
           "host_ram_mb": 24000, "cpu_count": 2}
    return make_plan(resolve(Request(Path("out")), {}, "smoke"), env, dataset_mb=1, nproc_env="2" if multi_gpu else None)


def _stage(tmp_path: Path, multi_gpu: bool = False, network: Path | None = None):
    plan = _plan(multi_gpu)
    values = override_values(plan, bundle_dir=BUNDLE, dataset_dir=tmp_path / "data", datalist=tmp_path / "dl.json",
                             out_dir=tmp_path / "out", pretrained=tmp_path / "m.pt", pairs=[[1, 3]], auto_seg=True)
    return stage(plan, bundle_dir=BUNDLE, out_dir=tmp_path / "out", override=values, network_config=network)


def test_staged_configs_go_under_out_configs_only(tmp_path):
    staged = _stage(tmp_path)
    assert sorted(p.name for p in staged.config_dir.iterdir()) == ["auto_override.json", "dfw_no_logging.json"]
    assert json.loads(staged.no_logging.read_text()) == {"use_mlflow": False, "use_tensorboard": False}


def test_auto_seg_never_drops_the_class_prompt_and_always_drops_points(tmp_path):
    override = json.loads(_stage(tmp_path).override.read_text())
    assert (override["drop_label_prob"], override["drop_point_prob"]) == (0.0, 1.0)
    assert override["label_mappings"] == {"default": [[1, 3]]} and override["val_at_start"] is True


def test_the_override_comes_after_evaluate_json_in_the_eval_stack(tmp_path):
    stack = [Path(p).name for p in _stage(tmp_path, network=REPO / "fixtures/micro_model/network.json").eval_stack]
    assert stack == ["train.json", "train_continual.json", "evaluate.json", "network.json", "auto_override.json",
                     "dfw_no_logging.json"]


def test_multi_gpu_adds_the_bundles_distributed_configs(tmp_path):
    staged = _stage(tmp_path, multi_gpu=True)
    assert "multi_gpu_train.json" in staged.train_stack[2] and "mgpu_evaluate.json" in staged.eval_stack[3]
