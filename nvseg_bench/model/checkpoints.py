"""Checkpoints without torch: a torch.save archive's tensors as memory-mapped numpy arrays, the layout
check before the phases, and the tensor-by-tensor comparison after them.

The wrapper process needs a checkpoint's names, shapes and bytes (the layout check, the comparison, the
preprocessing cache's scrub), never its autograd. Importing torch for that costs 2.5 s per run on a
2-core machine, on the critical path. The archive layout this reads is written down in docs/design.md
("Checkpoint files"). Like torch.load(weights_only=True) it runs no pickled code: only the globals a
plain state dict needs are accepted, anything else is NotTorchZip, and read_tensors falls back to torch
for what this module does not read (legacy files).

The layout check runs before any phase starts, because the bundle loads finetune weights non-strictly:
a checkpoint of another layout (an older VISTA3D bundle's, another architecture) would otherwise train
from mostly random weights without a word. The expected layout of vista3d132 is data
(nvseg_bench/data/vista3d132_layout.json, written by scripts/make_vista3d132_layout.py).
"""
from __future__ import annotations

import collections
import io
import json
import pickle
import pickletools
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from nvseg_bench import paths
from nvseg_bench.errors import ArgumentError

# storage class name -> (numpy dtype of the stored bytes, floating point); bfloat16 is read as its
# 16 raw bits and widened to float32 by floats()
STORAGES: dict[str, tuple[str, bool]] = {
    "FloatStorage": ("<f4", True), "DoubleStorage": ("<f8", True), "HalfStorage": ("<f2", True),
    "BFloat16Storage": ("<u2", True), "LongStorage": ("<i8", False), "IntStorage": ("<i4", False),
    "ShortStorage": ("<i2", False), "CharStorage": ("i1", False), "ByteStorage": ("u1", False),
    "BoolStorage": ("?", False),
}
# torch's own names that its weights-only loader accepts and saved tensors use (tensor subclasses
# such as MONAI's MetaTensor included): the base of the cache scrub's allowlist. read_archive
# accepts fewer, only what a state dict needs.
TORCH_GLOBALS = frozenset({"collections.OrderedDict", "torch._utils._rebuild_tensor_v2",
                           "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state",
                           "torch._tensor._rebuild_from_type_v2", "_codecs.encode", "torch.Size", "torch.Tensor",
                           "torch.nn.parameter.Parameter"} | {f"torch.{name}" for name in STORAGES})
CHUNK = 1 << 22  # elements per step when two tensors are compared: bounds the temporary arrays


class NotTorchZip(Exception):
    """Not a zip-format torch archive of plain tensors; the message says why."""


@dataclass(frozen=True)
class Stored:
    """One tensor in an archive: where its bytes are and how to view them; nothing is read until array()."""

    path: Path
    storage: str  # storage class name, a key of STORAGES
    data_offset: int  # file offset of the storage's first byte
    storage_numel: int
    offset: int  # tensor's first element within the storage
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def element_size(self) -> int:
        return np.dtype(STORAGES[self.storage][0]).itemsize

    def is_floating_point(self) -> bool:
        return STORAGES[self.storage][1]

    def array(self) -> np.ndarray:
        """The tensor's raw elements, memory-mapped: pages are read when touched and dropped with the array."""
        dtype = np.dtype(STORAGES[self.storage][0])
        if self.numel() == 0:
            return np.empty(self.shape, dtype=dtype)
        flat = np.memmap(self.path, dtype=dtype, mode="r", offset=self.data_offset, shape=(self.storage_numel,))
        strides = tuple(s * dtype.itemsize for s in self.stride)
        return np.lib.stride_tricks.as_strided(flat[self.offset:], shape=self.shape, strides=strides, writeable=False)

    def floats(self, array: np.ndarray | None = None) -> np.ndarray:
        """Values as float32 (torch's .float()); bfloat16 bits become the float32 with the same value."""
        raw = self.array() if array is None else array
        if self.storage == "BFloat16Storage":
            return (raw.astype(np.uint32) << 16).view(np.float32)
        return raw.astype(np.float32, copy=False)


@dataclass(frozen=True)
class _StorageRef:
    storage: str
    key: str
    numel: int


class _Rebuild:
    """Stand-ins for the few torch callables a state-dict pickle names."""

    def __init__(self, path: Path, offsets: dict[str, int]) -> None:
        self.path, self.offsets = path, offsets

    def tensor(self, storage: _StorageRef, offset: int, shape: tuple, stride: tuple, *_: Any) -> Stored:
        if storage.key not in self.offsets:
            raise NotTorchZip(f"its storage record data/{storage.key} is missing")
        return Stored(self.path, storage.storage, self.offsets[storage.key], storage.numel, int(offset),
                      tuple(int(s) for s in shape), tuple(int(s) for s in stride))

    @staticmethod
    def parameter(data: Stored, *_: Any) -> Stored:
        return data


def _unpickler(payload: bytes, rebuild: _Rebuild) -> pickle.Unpickler:
    allowed: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): rebuild.tensor,
        ("torch._utils", "_rebuild_parameter"): rebuild.parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): rebuild.parameter,
    } | {("torch", name): name for name in STORAGES}

    class Restricted(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            if (module, name) not in allowed:
                raise NotTorchZip(f"its pickle names {module}.{name}, which a plain state dict does not")
            return allowed[(module, name)]

        def persistent_load(self, pid: Any) -> _StorageRef:
            if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and pid[1] in STORAGES):
                raise NotTorchZip(f"its pickle refers to a storage it cannot read: {pid!r:.80}")
            return _StorageRef(pid[1], str(pid[2]), int(pid[4]))

    return Restricted(io.BytesIO(payload))


def _archive(path: Path) -> tuple[zipfile.ZipFile, str]:
    """The open archive and its record prefix ('model/' for a file saved as model.pt)."""
    if not zipfile.is_zipfile(path):
        raise NotTorchZip("it is not a zip archive (torch.save before 1.6 wrote another format, or the file is damaged)")
    archive = zipfile.ZipFile(path)
    pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
        archive.close()
        raise NotTorchZip("it is a zip archive without exactly one <name>/data.pkl record")
    return archive, pickles[0][: -len("data.pkl")]


def _data_offsets(path: Path, archive: zipfile.ZipFile, prefix: str) -> dict[str, int]:
    """Storage key -> file offset of its bytes (records are stored uncompressed, after a local header)."""
    offsets = {}
    with path.open("rb") as raw:
        for info in archive.infolist():
            if not info.filename.startswith(prefix + "data/"):
                continue
            if info.compress_type != zipfile.ZIP_STORED:
                raise NotTorchZip(f"its record {info.filename} is compressed; torch.save stores records uncompressed")
            raw.seek(info.header_offset + 26)
            name_len, extra_len = int.from_bytes(raw.read(2), "little"), int.from_bytes(raw.read(2), "little")
            offsets[info.filename[len(prefix) + 5:]] = info.header_offset + 30 + name_len + extra_len
    return offsets


def read_archive(path: Path | str) -> dict[str, Stored]:
    """The checkpoint's tensors by name, unwrapping {"model": ...} / {"state_dict": ...}, dropping DDP's "module."."""
    path = Path(path)
    archive, prefix = _archive(path)
    with archive:
        order = archive.read(prefix + "byteorder").decode().strip() if prefix + "byteorder" in archive.namelist() else "little"
        if order != "little":
            raise NotTorchZip(f"its tensors are stored {order}-endian")
        rebuild = _Rebuild(path, _data_offsets(path, archive, prefix))
        try:
            data = _unpickler(archive.read(prefix + "data.pkl"), rebuild).load()
        except NotTorchZip:
            raise
        except Exception as exc:  # a damaged pickle raises several types
            raise NotTorchZip(f"its pickle cannot be read ({type(exc).__name__}: {exc})") from None
    for key in ("model", "state_dict"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
    if not isinstance(data, dict):
        raise NotTorchZip(f"it holds a {type(data).__name__}, not a dict of tensors")
    return {str(k).removeprefix("module."): v for k, v in data.items() if isinstance(v, Stored)}


def pickle_globals(path: Path | str) -> set[str] | None:
    """Every global the archive's pickle names ('module.name'), or None when it is no complete torch archive.

    Read from the opcodes without unpickling, as torch's weights-only loader vets a file. A
    STACK_GLOBAL (protocol 4+, which torch.save does not write) is reported as '?' so that no
    allowlist accepts it.
    """
    try:
        archive, prefix = _archive(path)
        with archive:
            payload = archive.read(prefix + "data.pkl")
        found = set()
        for opcode, arg, _ in pickletools.genops(payload):
            if opcode.name == "GLOBAL":
                found.add(str(arg).replace(" ", "."))
            elif opcode.name == "STACK_GLOBAL":
                found.add("?")
        return found
    except (NotTorchZip, zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError):
        return None


def _chunks(a: np.ndarray, b: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    flat_a, flat_b = a.reshape(-1), b.reshape(-1)  # views when contiguous, which saved tensors nearly always are
    for start in range(0, flat_a.size, CHUNK):
        yield flat_a[start:start + CHUNK], flat_b[start:start + CHUNK]


def _values(t: Stored, part: np.ndarray) -> np.ndarray:
    return t.floats(part) if t.is_floating_point() else part


def compare(a: Stored, b: Stored) -> tuple[bool, float, float]:
    """(equal, max |a - b|, sum |a - b|) of two same-shaped tensors, as torch.equal and (a.float() - b.float()).abs().

    Equality is by value, as torch.equal: NaN differs from itself, -0.0 equals 0.0. The differences
    are summed only for a floating-point `a`, as the torch version did; they are 0.0 for equal tensors.
    """
    equal, max_diff, total = True, 0.0, 0.0
    for part_a, part_b in _chunks(a.array(), b.array()):
        va, vb = _values(a, part_a), _values(b, part_b)
        if np.array_equal(va, vb):
            continue
        equal = False
        if a.is_floating_point():
            diff = np.abs(va - vb.astype(np.float32, copy=False))
            max_diff, total = max(max_diff, float(np.nanmax(diff))), total + float(diff.sum(dtype=np.float64))
    return equal, max_diff, total


VISTA3D132_LAYOUT = paths.DATA / "vista3d132_layout.json"
SHOWN = 5


def expected_vista3d132() -> dict[str, list[int]]:
    return json.loads(VISTA3D132_LAYOUT.read_text())["keys"]


class Loaded:
    """A tensor torch loaded whole, for files read_archive does not read (legacy format, unusual pickles)."""

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
    """A checkpoint's tensors by name (Stored, memory-mapped; Loaded for a file only torch reads):
    unwraps {"model": ...} / {"state_dict": ...}, drops DDP's "module."."""
    try:
        return read_archive(path)
    except NotTorchZip:
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


def compare_checkpoints(finetuned: Path, pretrained: Path) -> dict[str, Any]:
    """Tensor-by-tensor comparison; `identical` means same keys and every tensor equal.

    `total_abs_diff` sums |finetuned - pretrained| over every changed floating-point tensor. Both
    files are read without torch (read_archive): each tensor is memory-mapped while it is compared
    and unmapped after, because pages read through a mapping stay resident until it is gone. Two
    full-size vista3d132 checkpoints (832 MiB each) then cost about two tensors of extra memory.
    """
    new, old = read_tensors(finetuned), read_tensors(pretrained)
    shared = sorted(set(new) & set(old))
    only_new, only_old = sorted(set(new) - set(old)), sorted(set(old) - set(new))
    changed, max_diff, total_diff, shape_mismatch = [], 0.0, 0.0, []
    for key in shared:
        if new[key].shape != old[key].shape:
            shape_mismatch.append(key)
            continue
        equal, tensor_max, tensor_total = compare(new[key], old[key])
        if not equal:
            changed.append(key)
            max_diff, total_diff = max(max_diff, tensor_max), total_diff + tensor_total
    return {
        "finetuned": str(finetuned),
        "pretrained": str(pretrained),
        "n_tensors": len(shared),
        "n_changed": len(changed),
        "n_equal": len(shared) - len(changed) - len(shape_mismatch),
        "max_abs_diff": max_diff,
        "total_abs_diff": total_diff,
        "same_keys": not only_new and not only_old,
        "shape_mismatch": shape_mismatch[:20],
        "keys_only_in_finetuned": only_new[:20],
        "keys_only_in_pretrained": only_old[:20],
        "changed_examples": changed[:10],
        "identical": not changed and not shape_mismatch and not only_new and not only_old,
    }
