"""The finetune phase's tracking switch: staged last in the train stack only, every key in the override table,
and nothing a cache key reads changes."""
from __future__ import annotations

import json
from pathlib import Path

from nvseg_bench.inputs.request import Request
from nvseg_bench.inputs.resolve import resolve
from nvseg_bench.planning.plan import make_plan
from nvseg_bench.stage import overrides, preprocess_cache
from nvseg_bench.stage.configs import override_values, stage
from nvseg_bench.tracking import bundle
from nvseg_bench.tracking.choice import Tracking

from ...helpers import REPO

BOTH = Tracking(mlflow=True, mlflow_uri="http://tracker:5000", tensorboard=True)


def _staged(tmp_path: Path, tracking: Tracking):
    env = {"cuda_available": False, "gpu_count": 0, "gpu_free_mb": 0, "host_ram_mb": 24000, "cpu_count": 2}
    plan = make_plan(resolve(Request(Path("out")), {}, "smoke"), env, dataset_mb=1, nproc_env=None)
    out = tmp_path / "out"
    values = override_values(plan, bundle_dir=REPO / "bundle", dataset_dir=tmp_path / "data", datalist=tmp_path / "dl.json",
                             out_dir=out, pretrained=tmp_path / "m.pt", pairs=[[1, 3]], auto_seg=True)
    return stage(plan, bundle_dir=REPO / "bundle", out_dir=out, override=values, network_config=None,
                 tracking=bundle.values(tracking, out)), values


def test_every_tracking_key_is_a_training_only_row_of_the_override_table(tmp_path):
    values = bundle.values(BOTH, tmp_path / "out")
    assert overrides.unknown(values) == [] and set(values) <= overrides.training_only()


def test_the_tracking_switch_goes_last_in_the_train_stack_and_not_into_the_eval_stack(tmp_path):
    staged, _ = _staged(tmp_path, BOTH)
    assert Path(staged.train_stack[-1]).name == "dfw_tracking.json"
    assert all(Path(p).name != "dfw_tracking.json" for p in staged.eval_stack)
    switch = json.loads(staged.tracking.read_text())
    assert switch["use_tensorboard"] is True and switch["use_mlflow"] is False
    assert switch["tracking_uri"] == "http://tracker:5000" and switch["run_name"].startswith("out-")


def test_nothing_is_staged_when_nothing_is_tracked(tmp_path):
    staged, _ = _staged(tmp_path, Tracking())
    assert staged.tracking is None and not (staged.config_dir / "dfw_tracking.json").exists()


def test_tracking_leaves_the_preprocessing_cache_key_unchanged(tmp_path):
    keys = []
    for name, tracking in (("plain", Tracking()), ("tracked", BOTH)):
        staged, values = _staged(tmp_path / name, tracking)
        cache, _ = preprocess_cache.attach(tmp_path / "cache", staged=staged, entries=[], dataset_dir=tmp_path,
                                           values=values, formal_eval=True, digests={})
        keys.append(cache.key_dir.name)
    assert keys[0] == keys[1]


def test_an_unreachable_store_takes_the_bundle_flag_out_of_the_finetune_command():
    command = ["python", "-m", "monai.bundle", "run", "--tracking", "mlflow", "--bundle_root", "b"]
    assert bundle.without_bundle_tracking(command) == ["python", "-m", "monai.bundle", "run", "--bundle_root", "b"]
