"""Staged inference: the override and config stack that run a bundle's own `configs/inference.json` as a phase.

Used by `predict` (new scans) and by the forgetting check (the validation cases, prompted with other
classes). The inference config segments the images listed in `dataset#data`, prompted with
`label_prompt` (VISTA3D ids), and saves one `NAME_seg.nii.gz` label map of those ids per image in
`output_dir`. The checkpoint goes where the config reads it: NVIDIA's inference.json loads it through
a top-level `checkpointloader` (`load_path`), this project's bundle/ through `ckpt_path`. The window
overlap and autocast are the run's evaluation values, so the same windows score both. A config that picks its
"everything" classes by a `modality` key (NV-Segment-CTMR's) gets the run's modality; a config with a
`subclass` entry loses the entries of the super-class ids the run trained (inputs/superclass.py), so a
prompt for such an id segments the finetuned class instead of its parts.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nvseg_bench.inputs import superclass
from nvseg_bench.inputs.dataset import case_name

POSTFIX = "seg"
CONFIG = Path("configs") / "inference.json"


def checkpoint_key(config: Path) -> str:
    """The config id that names the checkpoint, read from the inference config as data."""
    return "checkpointloader#load_path" if "checkpointloader" in json.loads(config.read_text()) else "ckpt_path"


@dataclass(frozen=True)
class Inference:
    """One inference phase: which bundle and checkpoint, which images, which classes, where the maps go."""

    bundle_dir: Path
    checkpoint: Path
    images: tuple[Path, ...]
    prompts: tuple[int, ...]  # VISTA3D ids
    output_dir: Path
    patch_size: list[int]
    overlap: float
    amp: bool
    modality: str | None = None  # the run's (inputs/modality.py); set where the config keys by it
    trained_super: tuple[int, ...] = ()  # super-class ids the run trained as such: out of `subclass`

    def override(self) -> dict[str, Any]:
        prompts = list(self.prompts)
        config = json.loads((self.bundle_dir / CONFIG).read_text())
        key = checkpoint_key(self.bundle_dir / CONFIG)
        return {"bundle_root": str(self.bundle_dir), key: str(self.checkpoint), "evaluator#amp": self.amp,
                "output_dir": str(self.output_dir),
                "dataset#data": [{"image": str(p), "label_prompt": prompts} for p in self.images],
                "label_prompt": prompts, "patch_size": self.patch_size, "inferer#overlap": self.overlap,
                "output_postfix": POSTFIX, "separate_folder": False} | self.model_keys(config)

    def model_keys(self, config: dict[str, Any]) -> dict[str, Any]:
        """The modality, where the config picks classes by it; `subclass` without the trained super-classes."""
        keys: dict[str, Any] = {}
        if self.modality is not None and "modality" in config:
            keys["modality"] = self.modality
        if self.trained_super and isinstance(config.get("subclass"), dict):
            keys["subclass"] = superclass.without(config["subclass"], self.trained_super)
        return keys

    def label_map(self, image: Path) -> Path:
        """Where the bundle writes the label map of `image`."""
        return self.output_dir / f"{case_name(image)}_{POSTFIX}.nii.gz"


def stage_inference(run: Inference, override_path: Path, network: Path | None) -> list[str]:
    """Write the phase's override file and return its config stack (the run's network config, when it had one)."""
    override_path.parent.mkdir(parents=True, exist_ok=True)
    override_path.write_text(json.dumps(run.override(), indent=2) + "\n")
    return [str(run.bundle_dir / CONFIG), *([str(network)] if network else []), str(override_path)]
