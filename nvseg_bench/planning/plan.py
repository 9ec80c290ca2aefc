"""Plan: the resources a run asks for, each value with one line that says why.

Inputs are the resolved values (resolve.py, each with its source), the environment (GPUs, free memory, host RAM, CPUs) and the
dataset's size; output is a `Plan` that staging turns into bundle config values. Pure functions;
no torch, no monai.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from nvseg_bench.errors import ArgumentError
from nvseg_bench.inputs.resolve import Resolved

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
# Those peaks by patch voxels (MiB): the expectation a GPU run's measured peak is held against.
PEAK_GPU_MB_BY_VOXELS: list[tuple[int, float]] = [(64**3, 3994.0), (96**3, 5222.0), (128**3, 8704.0), (160**3, 15770.0)]
CPU_PATCH = [64, 64, 64]
# Sliding-window windows scored per forward pass on the CPU. benchmarks/sw_batch_bench.py on the
# 2-core machine, 4 cases of 256x256x96: 2 took 0.75-0.76x the time of 1, 4 took 0.91-1.04x, and
# every prediction was identical voxel for voxel. GPUs keep the bundle's 1 until measured there.
CPU_SW_BATCH = 2
CACHE_RAM_SHARE = 0.4  # cache may use this share of host RAM; the rest is for workers and the model


@dataclass(frozen=True)
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
    sw_batch_size: int = 1
    precision: str = "fp32"  # fp32 | fp16 | bf16 (autocast dtype when amp)
    expected_peak_gpu_mb: float | None = None  # full vista3d132 training step; None on CPU
    rationale: tuple[str, ...] = ()  # one line per choice; prepare.py adds the lines of later checks once

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"rationale": list(self.rationale)}

    def noting(self, *lines: str | None) -> Plan:
        """This plan with more rationale lines (None: nothing to say)."""
        return replace(self, rationale=self.rationale + tuple(line for line in lines if line))


def patch_for_free_mb(free_mb: float) -> list[int]:
    for limit, patch in PATCH_LADDER:
        if free_mb < limit:
            return list(patch)
    return list(LARGEST_PATCH)


def expected_peak_gpu_mb(patch: list[int]) -> float:
    """Peak allocated GPU memory for one training step of the full model at this patch: linear in the
    patch's voxels between the measured points, extended along the last segment beyond them."""
    voxels = patch[0] * patch[1] * patch[2]
    points = PEAK_GPU_MB_BY_VOXELS
    (v0, m0), (v1, m1) = next(((a, b) for a, b in zip(points, points[1:]) if voxels <= b[0]), (points[-2], points[-1]))
    return round(max(points[0][1] * 0.5, m0 + (m1 - m0) * (voxels - v0) / (v1 - v0)), 0)


def _why(resolved: Resolved, key: str, text: str) -> str:
    source = resolved.source(key)
    if resolved.values[key].from_caller:
        return f"{key}: {text} (your {source} wins over the preset)"
    return f"{key}: {text} ({source})"


def _preset_line(resolved: Resolved) -> str:
    """'preset: smoke', with the reason when no preset flag chose it."""
    why = resolved.preset_why
    return f"preset: {resolved.preset}" + ("" if not why or why.startswith("--") else f" ({why})")


def choose_patch(resolved: Resolved, env: dict[str, Any]) -> tuple[list[int], str]:
    if resolved["patch_size"] is not None:
        return list(resolved["patch_size"]), _why(resolved, "patch_size", f"{resolved['patch_size']}")
    if not env.get("cuda_available"):
        return list(CPU_PATCH), f"patch_size: {CPU_PATCH}: no CUDA GPU, running on CPU where 64^3 keeps a step near 1 s"
    free = float(env.get("gpu_free_mb") or 0)
    patch = patch_for_free_mb(free)
    return patch, f"patch_size: {patch} from {free:.0f} MiB free GPU memory (ladder <8000:64, <16000:96, <32000:128, <48000:160)"


def choose_cache_rate(resolved: Resolved, env: dict[str, Any], dataset_mb: float) -> tuple[float, str]:
    if resolved["cache_rate"] is not None:
        rate = float(resolved["cache_rate"])
        return rate, _why(resolved, "cache_rate", f"{rate}")
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


AUTOCAST_DTYPES = {"fp16": "$torch.float16", "bf16": "$torch.bfloat16"}  # --precision -> torch.autocast dtype


def choose_precision(resolved: Resolved, cuda: bool) -> tuple[str, str]:
    """fp16 autocast on a CUDA GPU and fp32 on the CPU, unless --precision says otherwise."""
    given = resolved["precision"]
    if given is None:
        return ("fp16", "precision: fp16 autocast on the GPU (the bundle's amp)") if cuda else \
            ("fp32", "precision: fp32, autocast is a GPU feature here")
    if given != "fp32" and not cuda:
        raise ArgumentError(f"--precision {given} needs a CUDA GPU, and none is visible here.",
                            fix=["Leave --precision out (fp32 on the CPU), or run on a GPU machine."])
    what = "fp32 throughout" if given == "fp32" else f"{given} autocast"
    return given, _why(resolved, "precision", what)


def make_plan(resolved: Resolved, env: dict[str, Any], dataset_mb: float, nproc_env: str | None = None) -> Plan:
    patch, patch_why = choose_patch(resolved, env)
    cache, cache_why = choose_cache_rate(resolved, env, dataset_mb)
    nproc, nproc_why = choose_processes(resolved.preset, env, nproc_env)
    workers, workers_why = choose_workers(env, nproc)
    cuda = bool(env.get("cuda_available"))
    precision, precision_why = choose_precision(resolved, cuda)
    sw_batch = 1 if cuda else CPU_SW_BATCH
    rationale = [
        _preset_line(resolved),
        f"device: {'cuda' if cuda else 'cpu'}" + ("" if cuda else ", no CUDA GPU visible; expect CPU speed"),
        patch_why,
        cache_why,
        _why(resolved, "epochs", str(resolved["epochs"])),
        _why(resolved, "learning_rate", f"{resolved['learning_rate']:g}"),
        nproc_why,
        workers_why,
        precision_why,
        _why(resolved, "sw_overlap", f"{resolved['sw_overlap']} sliding-window overlap"),
        f"sw_batch_size: {sw_batch}, " + (
            "the bundle's default on a GPU" if cuda else
            "windows scored two at a time on the CPU: about 0.75x the time, the same predictions"),
        _why(resolved, "auto_seg", "class prompts only" if resolved["auto_seg"] else "class and point prompts"),
    ]
    expected = expected_peak_gpu_mb(patch) if cuda else None
    if expected is not None:
        rationale.append(f"expected peak GPU memory: {expected:.0f} MiB for a {patch} training step of the full "
                         "vista3d132 (fp16, one class prompt; docs/design.md, Planning constants)")
        free, total = float(env.get("gpu_free_mb") or 0), float(env.get("gpu_total_mb") or 0)
        if free and total and free < 0.5 * total:
            rationale.append(f"warning: only {free:.0f} of {total:.0f} MiB GPU memory is free; another process "
                             "holds the rest (nvidia-smi shows which). A run beside it may run out of memory")
        if free and expected > free:
            rationale.append(f"warning: {expected:.0f} MiB expected is more than the {free:.0f} MiB free on this GPU; "
                             f"expect an out-of-memory failure. Leave out --patch-size for the plan's choice, or pass "
                             f"a smaller one")
    return Plan(
        preset=resolved.preset,
        device="cuda" if cuda else "cpu",
        patch_size=patch,
        train_dataset_cache_rate=cache,
        epochs=int(resolved["epochs"]),
        learning_rate=float(resolved["learning_rate"]),
        num_workers=workers,
        nproc_per_node=nproc,
        multi_gpu=nproc >= 2,
        amp=precision != "fp32",
        sw_overlap=float(resolved["sw_overlap"]),
        val_interval=int(resolved["val_interval"]),
        sw_batch_size=sw_batch,
        precision=precision,
        expected_peak_gpu_mb=expected,
        rationale=tuple(rationale),
    )
