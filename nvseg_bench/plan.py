"""Plan: the resources a run asks for, each value with one line that says why.

Inputs are the settled preset values, the environment (GPUs, free memory, host RAM, CPUs) and the
dataset's size; output is a `Plan` that staging turns into bundle config values. Pure functions;
no torch, no monai.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .preset import Settings

# Free GPU memory (MiB) -> patch edge, the peer skill's ladder. Peak allocated measured on an H200
# (full model, fp16 autocast, AdamW, one class prompt): 3.9 GiB at 64^3, 5.1 at 96^3, 8.5 at 128^3,
# 15.4 at 160^3 (docs/design.md, Planning constants).
PATCH_LADDER: list[tuple[int, list[int]]] = [
    (8000, [64, 64, 64]),
    (16000, [96, 96, 96]),
    (32000, [128, 128, 128]),
    (48000, [160, 160, 160]),
]
LARGEST_PATCH = [192, 192, 128]
CPU_PATCH = [64, 64, 64]
CACHE_RAM_SHARE = 0.4  # cache may use this share of host RAM; the rest is for workers and the model


@dataclass
class Plan:
    preset: str
    device: str
    patch_size: list[int]
    train_dataset_cache_rate: float
    epochs: int
    learning_rate: float
    num_workers: int
    nproc_per_node: int
    multi_gpu: bool
    amp: bool
    sw_overlap: float
    val_interval: int
    rationale: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def patch_for_free_mb(free_mb: float) -> list[int]:
    for limit, patch in PATCH_LADDER:
        if free_mb < limit:
            return list(patch)
    return list(LARGEST_PATCH)


def _why(settings: Settings, key: str, text: str) -> str:
    source = settings.source(key)
    if source.startswith("--"):
        return f"{key}: {text} (your {source} wins over the preset)"
    return f"{key}: {text} ({source})"


def _preset_line(settings: Settings) -> str:
    """'preset: smoke', with the reason when no preset flag chose it."""
    why = settings.sources.get("preset", "")
    return f"preset: {settings.preset}" + ("" if not why or why.startswith("--") else f" ({why})")


def choose_patch(settings: Settings, env: dict[str, Any]) -> tuple[list[int], str]:
    if settings["patch_size"] is not None:
        return list(settings["patch_size"]), _why(settings, "patch_size", f"{settings['patch_size']}")
    if not env.get("cuda_available"):
        return list(CPU_PATCH), f"patch_size: {CPU_PATCH}: no CUDA GPU, running on CPU where 64^3 keeps a step near 1 s"
    free = float(env.get("gpu_free_mb") or 0)
    patch = patch_for_free_mb(free)
    return patch, f"patch_size: {patch} from {free:.0f} MiB free GPU memory (ladder <8000:64, <16000:96, <32000:128, <48000:160)"


def choose_cache_rate(settings: Settings, env: dict[str, Any], dataset_mb: float) -> tuple[float, str]:
    if settings["cache_rate"] is not None:
        rate = float(settings["cache_rate"])
        return rate, _why(settings, "cache_rate", f"{rate}")
    budget = float(env.get("host_ram_mb") or 0) * CACHE_RAM_SHARE
    if dataset_mb <= 0 or budget >= dataset_mb:
        return 1.0, f"cache_rate: 1.0, the resampled training set (~{dataset_mb:.0f} MiB) fits in {budget:.0f} MiB of host RAM"
    rate = round(max(0.0, min(1.0, budget / dataset_mb)), 2)
    return rate, f"cache_rate: {rate}, caching ~{dataset_mb:.0f} MiB would exceed {budget:.0f} MiB ({CACHE_RAM_SHARE:.0%} of host RAM)"


def choose_processes(preset: str, env: dict[str, Any], nproc_env: str | None) -> tuple[int, str]:
    gpus = int(env.get("gpu_count") or 0)
    if preset == "sanity":
        return 1, "nproc_per_node: 1, the sanity reference recipe runs on one GPU"
    if nproc_env:
        try:
            n = int(nproc_env)
        except ValueError:
            n = 1
        return max(1, n), f"nproc_per_node: {max(1, n)} from NPROC_PER_NODE={nproc_env}"
    if gpus >= 2:
        return gpus, f"nproc_per_node: {gpus}, one process per visible GPU"
    return 1, "nproc_per_node: 1, one process" + ("" if gpus else " on CPU")


def choose_workers(env: dict[str, Any], nproc: int) -> tuple[int, str]:
    cpus = int(env.get("cpu_count") or 1)
    if cpus <= 2:
        return 0, f"num_workers: 0, {cpus} CPU cores: loading in the training process avoids worker start-up"
    workers = max(1, min(8, cpus // max(1, nproc) - 1))
    return workers, f"num_workers: {workers} of {cpus} CPU cores per process"


def make_plan(settings: Settings, env: dict[str, Any], dataset_mb: float, nproc_env: str | None = None) -> Plan:
    patch, patch_why = choose_patch(settings, env)
    cache, cache_why = choose_cache_rate(settings, env, dataset_mb)
    nproc, nproc_why = choose_processes(settings.preset, env, nproc_env)
    workers, workers_why = choose_workers(env, nproc)
    cuda = bool(env.get("cuda_available"))
    rationale = [
        _preset_line(settings),
        f"device: {'cuda' if cuda else 'cpu'}" + ("" if cuda else ", no CUDA GPU visible; expect CPU speed"),
        patch_why,
        cache_why,
        _why(settings, "epochs", str(settings["epochs"])),
        _why(settings, "learning_rate", f"{settings['learning_rate']:g}"),
        nproc_why,
        workers_why,
        f"amp: {cuda}, " + ("fp16 autocast on GPU" if cuda else "autocast is a GPU feature here"),
        _why(settings, "sw_overlap", f"{settings['sw_overlap']} sliding-window overlap"),
    ]
    return Plan(
        preset=settings.preset,
        device="cuda" if cuda else "cpu",
        patch_size=patch,
        train_dataset_cache_rate=cache,
        epochs=int(settings["epochs"]),
        learning_rate=float(settings["learning_rate"]),
        num_workers=workers,
        nproc_per_node=nproc,
        multi_gpu=nproc >= 2,
        amp=cuda,
        sw_overlap=float(settings["sw_overlap"]),
        val_interval=int(settings["val_interval"]),
        rationale=rationale,
    )
