"""Benchmark: how long the data contract and audit take on many large CT volumes.

Writes N synthetic CT cases of a realistic size (default 512x512x120 int16 with a few labelled
blobs) into a scratch dir once, then times the header-only geometry check and the voxel audit.
Prints figures; asserts nothing.

    python benchmarks/audit_bench.py [--cases 24] [--shape 512 512 120] [--work /tmp/nvseg_audit_bench]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import nibabel
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nvseg_bench.inputs import audit, dataset  # noqa: E402


def make_case(root: Path, index: int, shape: tuple[int, int, int], rng: np.random.Generator) -> None:
    image = np.full(shape, -1000, np.int16)
    x, y = np.ogrid[: shape[0], : shape[1]]
    body = ((x - shape[0] / 2) / (shape[0] * 0.42)) ** 2 + ((y - shape[1] / 2) / (shape[1] * 0.35)) ** 2 < 1
    image[body] = 40
    image += rng.normal(0, 20, size=shape).astype(np.int16)
    label = np.zeros(shape, np.uint8)
    for _ in range(3):
        c = [int(rng.integers(s // 4, 3 * s // 4)) for s in shape]
        r = [int(rng.integers(4, 12)) for _ in shape]
        label[c[0] - r[0]:c[0] + r[0], c[1] - r[1]:c[1] + r[1], c[2] - r[2]:c[2] + r[2]] = 1
    image[label == 1] = 90
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    nibabel.save(nibabel.Nifti1Image(image, affine), root / "imagesTr" / f"case_{index:03d}.nii.gz")
    nibabel.save(nibabel.Nifti1Image(label, affine), root / "labelsTr" / f"case_{index:03d}.nii.gz")


def ensure_dataset(root: Path, n: int, shape: tuple[int, int, int]) -> None:
    (root / "imagesTr").mkdir(parents=True, exist_ok=True)
    (root / "labelsTr").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        if not (root / "labelsTr" / f"case_{i:03d}.nii.gz").is_file():
            make_case(root, i, shape, rng)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=24)
    parser.add_argument("--shape", type=int, nargs=3, default=[512, 512, 120])
    parser.add_argument("--work", type=Path, default=Path("/tmp/nvseg_audit_bench"))
    args = parser.parse_args()
    root = args.work / f"{args.cases}x{'x'.join(map(str, args.shape))}"
    started = time.perf_counter()
    ensure_dataset(root, args.cases, tuple(args.shape))
    print(f"dataset: {args.cases} cases of {args.shape} at {root} (made/checked in {time.perf_counter() - started:.1f} s)")
    gz_mb = sum(p.stat().st_size for p in root.rglob("*.nii.gz")) / 2**20
    raw_mb = args.cases * int(np.prod(args.shape)) * 3 / 2**20  # int16 image + uint8 label
    entries = dataset.five_fold_datalist(dataset.find_pairs(root))["training"]
    t0 = time.perf_counter()
    dataset.check_pairs_geometry(entries, root)
    t1 = time.perf_counter()
    findings = audit.audit_dataset(entries, root, [1])
    t2 = time.perf_counter()
    print(f"on disk {gz_mb:.0f} MiB gzip, {raw_mb:.0f} MiB raw voxels; cpus {os.cpu_count()}")
    print(f"geometry check (headers only): {t1 - t0:.2f} s ({(t1 - t0) / args.cases * 1000:.1f} ms per case)")
    print(f"audit (voxels, once per file): {t2 - t1:.2f} s ({(t2 - t1) / args.cases:.3f} s per case, "
          f"{raw_mb / (t2 - t1):.0f} MiB/s of raw voxels)")
    print("summary:", json.dumps({k: findings["summary"][k] for k in ("hu_range", "looks_like_ct", "label_values_seen")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
