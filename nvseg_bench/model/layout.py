"""Checkpoint layout: do a checkpoint's tensor names and shapes fit the network that will load it?

Checked before any phase starts, because the bundle loads finetune weights non-strictly: a
checkpoint of another layout (an older VISTA3D bundle's, another architecture) would otherwise
train from mostly random weights without a word. The expected layout of vista3d132 is data
(nvseg_bench/data/vista3d132_layout.json, written by scripts/make_vista3d132_layout.py), so no
monai import is needed; the checkpoint is read by torchzip (no torch import, no pickled code runs),
and by torch.load(weights_only=True) only for a file torchzip does not read.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nvseg_bench import paths
from nvseg_bench.model import torchzip
from nvseg_bench.errors import ArgumentError

VISTA3D132_LAYOUT = paths.DATA / "vista3d132_layout.json"
SHOWN = 5


def expected_vista3d132() -> dict[str, list[int]]:
    return json.loads(VISTA3D132_LAYOUT.read_text())["keys"]


class Loaded:
    """A tensor torch loaded whole, for files torchzip does not read (legacy format, unusual pickles)."""

    def __init__(self, tensor: Any) -> None:
        self.shape = tuple(tensor.shape)
        self._floating = bool(tensor.is_floating_point())
        self._size = int(tensor.element_size())
        # numpy has no bfloat16; float32 holds every bfloat16 value exactly
        self._array = (tensor.float() if str(tensor.dtype) == "torch.bfloat16" else tensor).detach().contiguous().numpy()

    def numel(self) -> int:
        return int(self._array.size)

    def element_size(self) -> int:
        return self._size

    def is_floating_point(self) -> bool:
        return self._floating

    def array(self) -> Any:
        return self._array

    def floats(self, array: Any = None) -> Any:
        return (self._array if array is None else array).astype("float32", copy=False)


def _torch_state_dict(path: Path) -> dict[str, Loaded]:
    import torch

    data = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("model", "state_dict"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
    return {str(k).removeprefix("module."): Loaded(v) for k, v in data.items() if isinstance(v, torch.Tensor)}


def read_tensors(path: Path) -> dict[str, Any]:
    """A checkpoint's tensors by name (torchzip.Stored, memory-mapped; Loaded for a file only torch reads):
    unwraps {"model": ...} / {"state_dict": ...}, drops DDP's "module."."""
    try:
        return torchzip.read_tensors(path)
    except torchzip.NotTorchZip:
        return _torch_state_dict(path)


def checkpoint_layout(path: Path) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in read_tensors(path).items()}


def layout_problems(found: dict[str, list[int]], expected: dict[str, list[int]]) -> list[str]:
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    shapes = sorted(k for k in set(found) & set(expected) if list(found[k]) != list(expected[k]))
    problems = []
    if missing:
        problems.append(f"{len(missing)} of the network's {len(expected)} tensors are absent, e.g. {', '.join(missing[:SHOWN])}")
    if unexpected:
        problems.append(f"{len(unexpected)} checkpoint tensors have no place in the network, e.g. {', '.join(unexpected[:SHOWN])}")
    if shapes:
        problems.append(f"{len(shapes)} tensors differ in shape, e.g. "
                        + ", ".join(f"{k} {found[k]} vs {expected[k]}" for k in shapes[:SHOWN]))
    return problems


def check_layout(path: Path, expected: dict[str, list[int]], network: str) -> str:
    """Refuse a checkpoint that does not fit; return a one-line account of what was checked."""
    try:
        found = checkpoint_layout(path)
    except Exception as exc:  # torch raises several types for files that are not checkpoints
        raise ArgumentError(f"the pretrained checkpoint {path} cannot be read as tensors ({type(exc).__name__}: {exc}).",
                            fix=["Pass a PyTorch state dict saved with torch.save (VISTA3D model.pt)."]) from None
    problems = layout_problems(found, expected)
    if problems:
        raise ArgumentError(
            f"the pretrained checkpoint {path} does not fit {network}.",
            evidence=problems,
            fix=["It may come from another layout (an older VISTA3D bundle's, a MONAI 1.3 build) or another "
                 "architecture. Use the MONAI 1.4 NV-Segment-CT checkpoint, or pass --network-config for the "
                 "network it belongs to."])
    return f"{len(found)} tensors match {network}"
