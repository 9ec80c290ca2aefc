"""The model axis in a run's preparation: the chosen model's bundle, its presets, its "everything" classes, and
what the plan says about it (licence, the bundle's own default patch, super-classes).

prepare.py calls these in its flow; the rules themselves live in inputs/family.py (models),
inputs/modality.py, inputs/mapping_presets.py, inputs/superclass.py and planning/network.py. No torch,
no monai.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from nvseg_bench.errors import ArgumentError
from nvseg_bench.inputs import mapping_presets
from nvseg_bench.inputs.family import CT, CT_BODY, MRI_BODY, MRI_BRAIN, Model
from nvseg_bench.inputs.request import Request
from nvseg_bench.inputs.resolve import Resolved
from nvseg_bench.model import bundle_source
from nvseg_bench.planning import network

# the public datasets whose classes NV-Segment-CTMR's inference.json segments as "everything" per MR modality
EVERYTHING_SOURCE = {MRI_BODY: "TotalSegmentatorMR", MRI_BRAIN: "LUMIR"}


def early_bundle(req: Request, preset: str, spec: Model) -> Path | None:
    """The bundle folder known before the user's data is read: --bundle-dir, the builtin stand-in of the smoke
    preset on NV-Segment-CT, or (CTMR, whose class list only its bundle holds) NVIDIA's CTMR bundle from the hub."""
    if req.bundle_dir is not None:
        return bundle_source.bundle_dir(req.bundle_dir)
    if spec.name == CT:
        return bundle_source.BUILTIN if preset in bundle_source.BUILTIN_PRESETS else None
    return bundle_source.hub_snapshot(download=True, spec=spec)


def with_preset(resolved: Resolved, req: Request, bundle: Path | None) -> Resolved:
    """The resolved values with --mapping-preset's pairs as the mapping (checked later like any mapping)."""
    if req.mapping_preset is None:
        return resolved
    if req.label_mapping is not None or req.target_anatomy is not None:
        given = "--label-mapping" if req.label_mapping is not None else "--target-anatomy"
        raise ArgumentError(f"--mapping-preset {req.mapping_preset} and {given} were both given; a run has one mapping.",
                            fix=["Keep one of them."])
    if bundle is None:  # NVIDIA's NV-Segment-CT bundle, not fetched yet: it ships no presets at all
        raise ArgumentError(f"--mapping-preset {req.mapping_preset}: NV-Segment-CT ships no "
                            f"{mapping_presets.MAPPINGS_FILE}, so it has no dataset presets.",
                            fix=["NV-Segment-CTMR ships them: pass --model ctmr, or give the mapping with --label-mapping."])
    pairs, source = mapping_presets.pick(bundle, req.mapping_preset)
    return replace(resolved, mapping=replace(resolved.mapping, literal=pairs, anatomy=None, source=source))


def everything_pool(modality: str, bundle: Path, label_ids: set[int]) -> tuple[int, ...] | None:
    """The "everything" classes of an MR modality (the ids of its dataset's mapping in the bundle's
    label_mappings.json, as NV-Segment-CTMR's inference.json takes them); None for CT_BODY (forgetting.py's rule)."""
    if modality == CT_BODY:
        return None
    presets = mapping_presets.load(bundle)
    name = EVERYTHING_SOURCE[modality]
    if name not in presets:
        raise ArgumentError(f"the bundle's {mapping_presets.MAPPINGS_FILE} has no {name} mapping, whose classes "
                            f"{modality} segments as 'everything'.",
                            fix=["Use NV-Segment-CTMR's bundle as released, or pass --no-forgetting-check."])
    return tuple(sorted({glob for _, glob in presets[name]} & label_ids))


def default_patch_line(bundle: Path, found: network.GridFactor | None, patch: list[int]) -> str | None:
    """The plan's line when the bundle's own train.json default patch is one its network cannot take
    (NV-Segment-CTMR ships 192 x 198 x 128): the nearest valid patch, and the one this run uses."""
    try:
        default = json.loads((bundle / "configs" / "train.json").read_text(encoding="utf-8")).get("patch_size")
    except (OSError, ValueError, AttributeError):
        return None
    if found is None or not (isinstance(default, list) and all(isinstance(e, int) for e in default)):
        return None
    if all(edge % found.factor == 0 for edge in default):
        return None
    nearest = network.nearest_valid(default, found.factor)
    return (f"patch_size: the bundle's train.json default {default} does not fit the network (edges a multiple of "
            f"{found.factor}); its nearest valid patch is {nearest}; this run stages {patch} (its plan's choice, "
            "above) in its place, never the bundle's default")
