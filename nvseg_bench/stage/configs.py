"""Staged configs: the override files a run adds on top of the bundle, written under OUT/configs/.

The bundle directory is read-only to this tool: everything run-specific (paths, recipe, label
mapping, network) goes into OUT/configs/ and is passed by path. Also builds the config stacks,
whose order matters: evaluate.json resets mapping, paths and patch size, so the override follows it.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nvseg_bench.planning.plan import AUTOCAST_DTYPES, Plan
from nvseg_bench.stage import overrides

NO_LOGGING = "dfw_no_logging.json"
TRACKING_FILE = "dfw_tracking.json"  # --tracking: the finetune phase's handlers on (tracking/bundle.py)
OVERRIDE_NAMES = {"sanity": "train_continual_task06_lung.json", "smoke": "auto_override.json",
                  "finetune": "auto_override.json"}
RESAMPLE_MM = [1.5, 1.5, 1.5]


@dataclass(frozen=True)
class Staged:
    config_dir: Path
    override: Path
    no_logging: Path
    network: Path | None
    train_stack: list[str]
    eval_stack: list[str]
    ckpt_dir: Path
    tracking: Path | None = None  # the finetune phase's logging switch (--tracking), last in the train stack


def override_values(plan: Plan, *, bundle_dir: Path, dataset_dir: Path, datalist: Path, out_dir: Path,
                    pretrained: Path, pairs: list[list[int]], auto_seg: bool,
                    recipe: dict[str, Any] | None = None) -> dict[str, Any]:
    """The bundle override: paths, the plan's values, the mapping, and the pass-through rows of `recipe` (the
    resolved values by resolver key). Every key is described in stage/overrides.py."""
    values: dict[str, Any] = {
        "bundle_root": str(bundle_dir),
        "dataset_dir": str(dataset_dir),
        "data_list_file_path": str(datalist),
        "fold": 0,
        "ckpt_dir": str(out_dir / "checkpoints"),
        "output_dir": str(out_dir / "train"),
        "finetune": True,
        "finetune_model_path": str(pretrained),
        "epochs": plan.epochs,
        "learning_rate": plan.learning_rate,
        "lr_schedule#activate": False,
        "val_interval": plan.val_interval,
        "val_at_start": True,
        "patch_size": plan.patch_size,
        "patch_size_valid": plan.patch_size,
        "resample_to_spacing": RESAMPLE_MM,
        "label_mappings": {"default": pairs},
        "train_dataset_cache_rate": plan.train_dataset_cache_rate,
        "val_dataset_cache_rate": 1.0,
        "num_cache_workers": max(1, plan.num_workers),
        "num_workers": plan.num_workers,
        "sw_overlap": plan.sw_overlap,
        "sw_batch_size": plan.sw_batch_size,
        # upstream's inferer takes sw_batch_size but its config does not pass it: set it on the inferer itself
        "validate#inferer#sw_batch_size": plan.sw_batch_size,
        "amp": plan.amp,
        "validate#evaluator#amp": plan.amp,  # upstream's evaluator sets amp true on its own: fp32 means fp32
    }
    if plan.amp:  # the autocast dtype of --precision, for training and validation alike
        dtype = {"dtype": AUTOCAST_DTYPES[plan.precision]}
        values |= {"train#trainer#amp_kwargs": dtype, "validate#evaluator#amp_kwargs": dtype}
    for key, bundle_key in overrides.recipe_rows().items():
        if (recipe or {}).get(key) is not None:
            values[bundle_key] = recipe[key]
    if auto_seg:
        # class prompts only: never drop the label prompt, always drop point prompts
        values.update({"drop_label_prob": 0.0, "drop_point_prob": 1.0})
    return values


def _write_json(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def stage(plan: Plan, *, bundle_dir: Path, out_dir: Path, override: dict[str, Any],
          network_config: Path | None, tracking: dict[str, Any] | None = None) -> Staged:
    """The staged files and both config stacks; `tracking` (tracking/bundle.py) goes last in the train stack
    only, so the evaluations keep every handler off."""
    config_dir = out_dir / "configs"
    config_dir.mkdir(parents=True, exist_ok=True)
    override_path = _write_json(config_dir / OVERRIDE_NAMES[plan.preset], override)
    no_logging = _write_json(config_dir / NO_LOGGING, {"use_mlflow": False, "use_tensorboard": False})
    network = None
    if network_config is not None:
        network = config_dir / "network.json"
        shutil.copyfile(network_config, network)
    configs = bundle_dir / "configs"
    train = [configs / "train.json", configs / "train_continual.json"]
    evaluate = [*train, configs / "evaluate.json"]
    if plan.multi_gpu:
        train.append(configs / "multi_gpu_train.json")
        evaluate.append(configs / "mgpu_evaluate.json")
    tail = ([network] if network else []) + [override_path, no_logging]
    logging = _write_json(config_dir / TRACKING_FILE, tracking) if tracking else None
    return Staged(
        config_dir=config_dir,
        override=override_path,
        no_logging=no_logging,
        network=network,
        train_stack=[str(p) for p in train + tail + ([logging] if logging else [])],
        eval_stack=[str(p) for p in evaluate + tail],
        ckpt_dir=out_dir / "checkpoints",
        tracking=logging,
    )


def missing_bundle_configs(bundle_dir: Path, multi_gpu: bool) -> list[str]:
    names = ["train.json", "train_continual.json", "evaluate.json"]
    if multi_gpu:
        names += ["multi_gpu_train.json", "mgpu_evaluate.json"]
    return [n for n in names if not (bundle_dir / "configs" / n).is_file()]
