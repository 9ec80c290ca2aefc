"""The finetune phase's tracking switches: the bundle's own handlers on, their output under OUT.

TensorBoard: the bundle's TensorBoardStatsHandlers (train and validate, `use_tensorboard`) write to the
training's output_dir, OUT/train. MLflow: `monai.bundle run --tracking mlflow` appends MONAI's
MLFlowHandler to `train#handlers` and `validate#handlers` (any VISTA3D bundle: this project's stand-in
has no MLflow handler of its own, and NVIDIA's, behind `use_mlflow`, stays off so nothing is logged twice);
those handlers read `tracking_uri`, `experiment_name` and `run_name` from the staged override, so they log
the per-epoch loss and validation Dice into the run this tool opened (mlflow_run.py). Only the finetune
phase is tracked; the evaluations keep every handler off. Every key is a row of stage/overrides.py.
"""
from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

from nvseg_bench.tracking.choice import Tracking, experiment_name, store_uri

BUNDLE_FLAG = "--tracking"  # monai.bundle run's own option: patch the tracking handlers into the config
EXECUTED_CONFIG = "finetune_executed_config.json"  # the parsed config MONAI exports and logs as an artifact


def run_name(out_dir: Path) -> str:
    """A name no other open run in the experiment has: the handlers find the tool's run by it."""
    return f"{out_dir.name}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def values(tracking: Tracking, out_dir: Path) -> dict[str, Any]:
    """The finetune phase's logging override (empty when nothing is tracked)."""
    if not tracking.any:
        return {}
    found: dict[str, Any] = {"use_mlflow": False, "use_tensorboard": tracking.tensorboard}
    if tracking.mlflow:
        found |= {"tracking_uri": store_uri(tracking, out_dir), "experiment_name": experiment_name(),
                  "run_name": run_name(out_dir), "save_execute_config": str(out_dir / "train" / EXECUTED_CONFIG)}
    return found


def tensorboard_dir(out_dir: Path) -> Path:
    """Where the bundle's TensorBoard handlers write: the training's output_dir (configs.override_values)."""
    return out_dir / "train"


def without_bundle_tracking(command: list[str]) -> list[str]:
    """The finetune command with `--tracking mlflow` taken out (the MLflow store could not be reached)."""
    if BUNDLE_FLAG not in command:
        return list(command)
    at = command.index(BUNDLE_FLAG)
    return command[:at] + command[at + 2:]
