"""Environment facts for the plan and output.json: GPUs, host RAM, CPUs, package versions.

GPU facts come from `nvidia-smi` when it exists, else from torch (imported only here, and only
when asked). Package versions come from installed metadata, so monai is never imported.
Memory figures are whole MiB, and a host without a visible GPU reports `gpu_name: "cpu"` with 0 MiB,
the shapes the peer skill's output schema requires.
"""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib import metadata
from typing import Any

PACKAGES = ("monai", "torch", "numpy", "nibabel", "scipy", "pytorch-ignite", "einops", "fire",
            "huggingface_hub", "jsonschema", "nvseg-bench")


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def host_ram_mb() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    except (ValueError, OSError, AttributeError):
        return 0.0


def visible_gpus_from_smi() -> list[dict[str, Any]] | None:
    """One dict per GPU from nvidia-smi (honours CUDA_VISIBLE_DEVICES by index), or None without it."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    query = "--query-gpu=index,name,memory.total,memory.free"
    try:
        out = subprocess.run([smi, query, "--format=csv,noheader,nounits"], capture_output=True, text=True,
                             timeout=20, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return None
    gpus = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 4:
            gpus.append({"index": parts[0], "name": parts[1], "total_mb": float(parts[2]), "free_mb": float(parts[3])})
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        wanted = [v.strip() for v in visible.split(",") if v.strip()]
        gpus = [g for g in gpus if g["index"] in wanted]
    return gpus


NO_GPU_NAME = "cpu"


def collect(probe_gpu: bool = True) -> dict[str, Any]:
    gpus = visible_gpus_from_smi() if probe_gpu else []
    gpus = gpus or []
    first = gpus[0] if gpus else {}
    return {
        "cuda_available": bool(gpus),
        "gpu_count": len(gpus),
        "gpu_name": first.get("name", NO_GPU_NAME),
        "gpu_total_mb": round(first.get("total_mb", 0)),
        "gpu_free_mb": round(first.get("free_mb", 0)),
        "host_ram_mb": round(host_ram_mb()),
        "cpu_count": os.cpu_count() or 1,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "packages": package_versions(),
    }
