"""The peer skill's shapes for fields it shares with ours (NVIDIA skills `nv-segment-ct-finetune`).

Its graders validate output.json with their own schema (restated from its facts in
nvseg_bench/schema/peer_output.schema.json) and read some fields by name. Where the peer's field
means something other than ours, the peer's shape keeps the name and ours moves to another key
(`result.py` says which); this module only builds the peer's shapes. No torch, no monai.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from nvseg_bench.inputs.resolve import MappingAsk


def whole_mib(value: float | None) -> int:
    """The peer's memory figure: whole MiB, 0 when nothing was measured (no GPU, no sampler)."""
    return 0 if value is None else int(round(value))


def stack_names(stack: list[str], bundle_dir: Path, out_dir: Path) -> list[str]:
    """Config files as graders match them: bundle configs relative to the bundle (`configs/train.json`),
    staged overrides relative to the output dir (`configs/auto_override.json`)."""
    names = []
    for item in stack:
        path = Path(item)
        root = next((r for r in (bundle_dir, out_dir) if path.is_relative_to(r)), None)
        names.append(path.relative_to(root).as_posix() if root else item)
    return names


def mapping_resolution(ask: MappingAsk, pairs: list[list[int]], names: dict[int, str]) -> dict[str, Any]:
    """How the pairs were found, as an object: an anatomy name looked up, or a literal mapping and who gave
    it (the resolver decided which: inputs/resolve.py)."""
    if ask.anatomy is not None:
        local, global_id = pairs[0]
        return {"source": "anatomy_lookup", "anatomy": ask.anatomy, "user_idx": local,
                "vista3d_idx": global_id, "vista3d_name": names.get(global_id)}
    found: dict[str, Any] = {"source": "literal", "value": pairs, "given_by": ask.source}
    if ask.ignored_anatomy is not None:
        found["ignored_target_anatomy"] = ask.ignored_anatomy
    return found


def checkpoint_comparisons(comparison: dict[str, Any] | None) -> dict[str, Any]:
    """`{"best": ...}`: the best checkpoint's comparison under our names and the peer's, or None."""
    if comparison is None:
        return {"best": None}
    return {"best": {"weights_identical": comparison["identical"], "tensor_count": comparison["n_tensors"],
                     "differing_tensors": comparison["n_changed"], **comparison}}
