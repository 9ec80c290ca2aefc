"""Network facts a run needs before any phase: the grid factor every patch edge must be a multiple of.

VISTA3D's image encoder is MONAI's SegResNetDS2. It halves the grid once per level after the first
and refuses an input whose size is not a multiple of 2 ** (levels - 1) (its `shape_factor`), so a
patch the network cannot take fails deep inside the finetune. The factor is read from the config
that defines `network_def` (the bundle's configs/train.json, or --network-config) as data. No
torch, no monai.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nvseg_bench.errors import ArgumentError

# monai.networks.nets.vista3d132 builds SegResNetDS2 with blocks_down=(1, 2, 2, 4, 4): 5 levels
VISTA3D132_LEVELS = 5
SEGRESNET_DS2_DEFAULT_LEVELS = 4  # SegResNetDS2's own default blocks_down=(1, 2, 2, 4)
ENCODERS = ("SegResNetDS2", "SegResNetDS")


@dataclass(frozen=True)
class GridFactor:
    """Every input edge must be a multiple of `factor`; `described` says which network and where from."""

    factor: int
    described: str


def _levels_of_encoder(encoder: Any, config: dict[str, Any]) -> int | None:
    """Levels of a SegResNetDS(2) encoder written as a config dict; None for another or an anisotropic one."""
    if not isinstance(encoder, dict) or not str(encoder.get("_target_", "")).endswith(ENCODERS):
        return None
    if encoder.get("resolution") is not None:
        return None  # anisotropic scales: the factor differs per axis, not checked here
    blocks = encoder.get("blocks_down", [1] * SEGRESNET_DS2_DEFAULT_LEVELS)
    if isinstance(blocks, str) and blocks.startswith("@"):
        blocks = config.get(blocks[1:])  # a reference to a top-level value of the same file
    return len(blocks) if isinstance(blocks, list) and blocks else None


def grid_factor(network_def: Any, config: dict[str, Any], source: str) -> GridFactor | None:
    """The factor for a `network_def` value found in `config` (read from `source`); None when not recognised."""
    if isinstance(network_def, str) and "vista3d132(" in network_def:
        levels = VISTA3D132_LEVELS
        name = "vista3d132"
    elif isinstance(network_def, dict):
        levels = _levels_of_encoder(network_def.get("image_encoder"), config)
        name = "the network"
    else:
        return None
    if levels is None:
        return None
    factor = 2 ** (levels - 1)
    halvings = "once" if levels == 2 else f"{levels - 1} times"
    return GridFactor(factor, f"{name} ({source}) has a SegResNetDS2 encoder of {levels} levels that halves "
                              f"the grid {halvings}, so each patch edge must be a multiple of {factor}")


def network_factor(bundle_dir: Path, network_config: Path | None) -> GridFactor | None:
    """The factor of the network a run builds: --network-config's network_def, else the bundle's train.json."""
    source = network_config if network_config is not None else bundle_dir / "configs" / "train.json"
    try:
        config = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # a missing or broken config is refused where it is read, with its own message
    if not isinstance(config, dict) or "network_def" not in config:
        return None
    return grid_factor(config["network_def"], config, str(source))


def nearest_valid(patch: list[int], factor: int) -> list[int]:
    """Each edge moved to the nearest multiple of factor (down on a tie: less memory), at least factor."""
    valid = []
    for edge in patch:
        below = edge // factor * factor
        valid.append(max(factor, below if edge - below <= below + factor - edge else below + factor))
    return valid


def check_patch(patch: list[int], found: GridFactor | None, given_by: str) -> None:
    """Refuse a patch the network cannot take, naming the factor and the nearest patch it can."""
    if found is None or all(edge % found.factor == 0 for edge in patch):
        return
    valid = nearest_valid(patch, found.factor)
    odd = sorted({e for e in patch if e % found.factor})
    verb = "is" if len(odd) == 1 else "are"
    raise ArgumentError(
        f"patch_size {patch} ({given_by}) does not fit the network; nothing was run.",
        evidence=[f"{found.described}: {' and '.join(map(str, odd))} {verb} not."],
        fix=[f"Nearest valid patch: {valid}. Pass --patch-size '{json.dumps(valid, separators=(',', ':'))}', "
             "or leave --patch-size out for the plan's choice."])


def patch_note(found: GridFactor | None) -> str:
    """The plan's line on how the patch was checked against the network."""
    if found is None:
        return "patch_size: not checked against the network (its network_def is not one this tool can read)"
    return f"patch_size: fits the network (edges a multiple of {found.factor})"
