"""Presets: the named recipes (smoke, sanity, finetune) and how caller flags override them.

A preset is data: default values for the run. resolve.py applies the caller's flags and the
dataset's fixture card over them; this module only names the presets, chooses one and reads the card.
No torch, no monai.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from nvseg_bench import paths
from nvseg_bench.errors import ArgumentError

FIXTURE_CARD = "fixture.json"  # a dataset dir may name its own preset, model and mapping (the shipped fixture does)
SHIPPED_FIXTURE = paths.SHIPPED_FIXTURE
TASK06_ENV = paths.TASK06_ENV

PRESETS: dict[str, dict[str, Any]] = {
    # shortest workflow check: CPU-sized, overlap kept low because CPU time goes to sliding windows
    "smoke": {
        "epochs": 4,
        "learning_rate": 1e-3,
        "patch_size": [64, 64, 64],
        "cache_rate": 1.0,
        "auto_seg": True,
        "sw_overlap": 0.25,
        "val_interval": 1,
        "label_mapping": [[1, 3]],
    },
    # the single-GPU MSD Task06 "DFW" reference recipe (docs/task06-and-results.md)
    "sanity": {
        "epochs": 5,
        "learning_rate": 5e-5,
        "patch_size": [128, 128, 128],
        "cache_rate": 1.0,
        "auto_seg": True,
        "sw_overlap": 0.625,
        "val_interval": 1,
        "label_mapping": [[1, 23]],
    },
    # a user's own finetune: upstream continual-learning defaults, patch size from the plan
    "finetune": {
        "epochs": 5,
        "learning_rate": 5e-5,
        "patch_size": None,
        "cache_rate": None,
        "auto_seg": False,
        "sw_overlap": 0.625,
        "val_interval": 1,
        "label_mapping": None,
    },
}


def preset_name(smoke: bool, sanity: bool) -> str:
    if smoke and sanity:
        raise ArgumentError(
            "--smoke and --sanity were both given; a run has one preset.",
            fix=["Use --smoke for the quick wiring check, or --sanity for the Task06 reference run."],
        )
    return "smoke" if smoke else "sanity" if sanity else "finetune"


def default_dataset(smoke: bool, sanity: bool) -> Path:
    """The dataset a preset flag implies when none is given: the shipped fixture, or $NVSEG_TASK06_DIR."""
    if smoke and not sanity:
        if not SHIPPED_FIXTURE.is_dir():
            raise ArgumentError(f"--smoke without a dataset runs the shipped fixture {SHIPPED_FIXTURE}, which is not here.",
                                fix=["Pass the dataset dir as the first argument, or reinstall nvseg-bench (its wheel ships the "
                                     "fixture) or run from a source checkout."])
        return SHIPPED_FIXTURE
    if sanity and not smoke:
        found = os.environ.get(TASK06_ENV)
        if not found:
            raise ArgumentError(f"--sanity was given without a dataset, and ${TASK06_ENV} is not set.",
                                fix=[f"Pass the MSD Task06_Lung folder as the first argument, or set {TASK06_ENV} to it."])
        return Path(found)
    raise ArgumentError("no dataset was given.", fix=["Pass the dataset dir as the first argument or with --dataset-dir."])


def is_task06(dataset_dir: Path) -> bool:
    """An MSD Task06 folder: named Task06_Lung, or Task06* with its dataset.json."""
    name = dataset_dir.name
    return name == "Task06_Lung" or (name.startswith("Task06") and (dataset_dir / "dataset.json").is_file())


def choose_preset(smoke: bool, sanity: bool, dataset_dir: Path, card: dict[str, Any]) -> tuple[str, str]:
    """The run's preset and why: a flag wins, then the dataset's fixture card, then an MSD Task06 folder."""
    preset = preset_name(smoke, sanity)
    if smoke or sanity:
        return preset, f"--{preset}"
    named = card.get("preset")
    if named is not None:
        if named not in PRESETS:
            raise ArgumentError(f"{dataset_dir / FIXTURE_CARD} names the preset {named!r}, which does not exist.",
                                fix=[f"Name one of {', '.join(sorted(PRESETS))} there, or pass --smoke or --sanity."])
        return named, f"named by {dataset_dir / FIXTURE_CARD}; no --smoke or --sanity was given"
    if is_task06(dataset_dir):
        return "sanity", f"{dataset_dir} is an MSD Task06 folder; no --smoke or --sanity was given"
    return preset, "a user finetune: no --smoke or --sanity, and the dataset names no preset"


def read_fixture_card(dataset_dir: Path) -> dict[str, Any]:
    """The optional fixture.json of a dataset dir: paths in it are relative to that dir."""
    path = dataset_dir / FIXTURE_CARD
    if not path.is_file():
        return {}
    try:
        card = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ArgumentError(
            f"{path} is not valid JSON ({exc}).",
            fix=[f"Fix or remove {FIXTURE_CARD}; it only names the dataset's default model and mapping."],
        ) from None
    for key in ("pretrained_ckpt", "network_config"):
        if card.get(key):
            card[key] = str((dataset_dir / card[key]).resolve())
    return card
