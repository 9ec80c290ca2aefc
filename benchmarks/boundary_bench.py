"""Benchmark: boundary metrics (NSD at 2 mm and HD95) of one Task06-size case, one class.

A 512x512x300 grid at 0.8x0.8x2.5 mm holding an organ-like label (an ellipsoid about 150 x 110 x 90 mm
with a lobed, bumpy surface) and a prediction of it shifted by 2 mm and grown by a voxel in-plane,
the kind of disagreement a finetune moves. Times evidence/boundary.case_metrics on the arrays in memory
(the figure the target is for), and the peak of memory numpy and scipy allocate on top of the two arrays
(tracemalloc sees every numpy allocation); then one phase folder end to end (two gzipped NIfTI files read,
side_block) in a fresh process, with how far it raised that process's peak RSS. Pinned to 2 CPUs where the system allows.
Prints figures; asserts nothing.

    python benchmarks/boundary_bench.py [--repeats 3] [--work /tmp/nvseg_boundary_bench]
"""
from __future__ import annotations

import argparse
import csv
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import nibabel
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nvseg_bench.evidence import boundary  # noqa: E402
from nvseg_bench.evidence.per_class import MappedClass  # noqa: E402

SHAPE, SPACING = (512, 512, 300), (0.8, 0.8, 2.5)
CLASSES = (MappedClass("liver", 1, 1),)


def organ(shift_mm: float = 0.0, grow: float = 0.0) -> np.ndarray:
    """An ellipsoid with lobes (low-order bumps of its radius), centred in the grid, in uint8."""
    x, y, z = (np.arange(n, dtype=np.float32) * s for n, s in zip(SHAPE, SPACING))
    cx, cy, cz = 200.0 + shift_mm, 210.0, 375.0
    dx, dy, dz = (x - cx)[:, None, None], (y - cy)[None, :, None], (z - cz)[None, None, :]
    radius = np.sqrt((dx / 75) ** 2 + (dy / 55) ** 2 + (dz / 45) ** 2)
    angle = np.arctan2(dy, dx)
    bumps = 1.0 + 0.08 * np.sin(3 * angle) + 0.05 * np.cos(5 * angle + dz / 20)
    return (radius <= bumps + grow).astype(np.uint8)


def timed_metrics(pred: np.ndarray, label: np.ndarray, repeats: int) -> tuple[list[float], int, dict]:
    times, peak, got = [], 0, {}
    for _ in range(repeats):
        tracemalloc.start()
        started = time.perf_counter()
        got = boundary.case_metrics(pred, label, SPACING, CLASSES, 2.0)
        times.append(time.perf_counter() - started)
        peak = max(peak, tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    return times, peak, got


def write_case(work: Path, pred: np.ndarray, label: np.ndarray) -> None:
    (work / "eval_finetuned").mkdir(parents=True, exist_ok=True)
    affine = np.diag([*SPACING, 1.0])
    nibabel.save(nibabel.Nifti1Image(pred, affine), work / "eval_finetuned" / "case_seg.nii.gz")
    nibabel.save(nibabel.Nifti1Image(label, affine), work / "label.nii.gz")
    with (work / "eval_finetuned" / "val_mean_dice_raw.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([["filename", "class0", "mean"], ["case.nii.gz", "0.9", "0.9"]])


def peak_rss_kib() -> int:
    """VmHWM, this process's peak RSS (ru_maxrss would carry the parent's peak across fork and exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def read_and_score(work: Path) -> None:
    """In a fresh process: side_block over the written folder, its seconds and how far it raised peak RSS."""
    import scipy.ndimage  # noqa: F401  imported before the baseline, as a run has it

    before = peak_rss_kib()
    started = time.perf_counter()
    side = boundary.side_block(work / "eval_finetuned", {"case.nii.gz": work / "label.nii.gz"}, CLASSES, 2.0)
    seconds = time.perf_counter() - started
    grew = (peak_rss_kib() - before) / 1024
    print(f"side_block end to end (two .nii.gz read and scored, fresh process): {seconds:.3f} s; peak RSS grew by "
          f"{grew:.0f} MiB; mean NSD {side['mean_nsd']:.4f}, HD95 {side['mean_hd95_mm']:.2f} mm")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/nvseg_boundary_bench"))
    parser.add_argument("--read", action="store_true", help=argparse.SUPPRESS)  # the fresh process's part
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:2])
    if args.read:
        return read_and_score(args.work)
    label = organ()
    pred = organ(shift_mm=2.0, grow=0.01)
    print(f"grid {SHAPE} at {SPACING} mm; label {int(label.sum())} voxels, prediction {int(pred.sum())}; "
          f"cpus {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()}")
    times, peak, got = timed_metrics(pred, label, args.repeats)
    print(f"case_metrics (arrays in memory): {', '.join(f'{t:.3f}' for t in times)} s; median "
          f"{sorted(times)[len(times) // 2]:.3f} s; peak extra allocation {peak / 2**20:.0f} MiB; {got}")
    write_case(args.work, pred, label)
    subprocess.run([sys.executable, __file__, "--read", "--work", str(args.work)], check=True)


if __name__ == "__main__":
    main()
