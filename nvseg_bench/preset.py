"""Presets: the named recipes (smoke, sanity, finetune) and how caller flags override them.

A preset is data: default values for the run. `settle` merges a preset with what the caller gave,
caller flags always winning, and records where each value came from for the plan's rationale.
No torch, no monai.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ArgumentError

FIXTURE_CARD = "fixture.json"  # a dataset dir may name its own model and mapping (the shipped fixture does)

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


@dataclass
class Settings:
    """The values a run uses, each with its source ("preset smoke", "--epochs", "fixture.json")."""

    preset: str
    values: dict[str, Any]
    sources: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.values.get(key)

    def source(self, key: str) -> str:
        return self.sources.get(key, "default")


def preset_name(smoke: bool, sanity: bool) -> str:
    if smoke and sanity:
        raise ArgumentError(
            "--smoke and --sanity were both given; a run has one preset.",
            fix=["Use --smoke for the quick wiring check, or --sanity for the Task06 reference run."],
        )
    return "smoke" if smoke else "sanity" if sanity else "finetune"


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


def settle(preset: str, given: dict[str, Any], card: dict[str, Any]) -> Settings:
    """Preset values, then the dataset's fixture card, then the caller's flags (None = not given)."""
    settings = Settings(preset=preset, values={})
    for key, value in PRESETS[preset].items():
        settings.values[key] = value
        settings.sources[key] = f"preset {preset}"
    for key in ("label_mapping", "pretrained_ckpt", "network_config"):
        if card.get(key) is not None:
            settings.values[key] = card[key]
            settings.sources[key] = FIXTURE_CARD
    for key, value in given.items():
        if value is not None and value is not False:
            settings.values[key] = value
            settings.sources[key] = "--" + key.replace("_", "-")
        else:
            settings.values.setdefault(key, value)
    return settings
