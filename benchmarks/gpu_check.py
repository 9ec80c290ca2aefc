"""GPU check: the sanity recipe at realistic size, for time and memory (not for Dice).

Builds a Task06-shaped synthetic dataset (512x512 slices at 0.7-0.9 mm, 100-250 slices, a few
tumour-like blobs labelled 1, MSD naming and dataset.json), saves a randomly initialised full-size
vista3d132 as the "pretrained" checkpoint, runs `--sanity` through scripts/run_finetune.py, and
prints phase times, iterations per second, GPU utilisation and peak memory. With random weights
the reference gates fail (exit 4): this check is about time and memory.

    python benchmarks/gpu_check.py --out $OUT                      # on the GPU machine
    python benchmarks/gpu_check.py --out /tmp/gc --micro --cases 6 --size 96 --slices 40 48   # CPU rehearsal
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from pathlib import Path

import nibabel
import numpy as np

REPO = Path(__file__).resolve().parents[1]
MICRO = REPO / "fixtures" / "micro_model"
ITER_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*Iter: \d+/\d+ -- train_loss")


def make_case(args: tuple[Path, int, int, int]) -> None:
    root, index, size, slices = args
    rng = np.random.default_rng(index)
    spacing = (rng.uniform(0.7, 0.9),) * 2 + (rng.choice([1.25, 2.5]),)
    x, y = np.ogrid[:size, :size]
    image = np.full((size, size, slices), -1000, np.int16)
    body = ((x - size / 2) / (size * 0.42)) ** 2 + ((y - size / 2) / (size * 0.32)) ** 2 < 1
    lungs = (((x - size * 0.33) / (size * 0.13)) ** 2 + ((y - size * 0.5) / (size * 0.2)) ** 2 < 1) | \
            (((x - size * 0.67) / (size * 0.13)) ** 2 + ((y - size * 0.5) / (size * 0.2)) ** 2 < 1)
    image[body] = 40
    image[lungs] = -850
    image += rng.normal(0, 25, image.shape).astype(np.int16)
    label = np.zeros(image.shape, np.uint8)
    zz = np.arange(slices)[None, None, :]
    for _ in range(int(rng.integers(1, 4))):  # tumour-like blobs inside a lung
        cx, cy = size * rng.choice([0.33, 0.67]), size * rng.uniform(0.42, 0.58)
        cz, r = rng.uniform(0.2, 0.8) * slices, rng.uniform(6, 18) / spacing[0]
        blob = ((x - cx) ** 2 + (y - cy) ** 2)[:, :, None] + ((zz - cz) * spacing[2] / spacing[0]) ** 2 < r**2
        label[blob] = 1
        image[blob] = rng.normal(20, 25, int(blob.sum())).astype(np.int16)
    affine = np.diag([*spacing, 1.0])
    name = f"lung_{index:03d}.nii.gz"
    nibabel.save(nibabel.Nifti1Image(image, affine), root / "imagesTr" / name)
    nibabel.save(nibabel.Nifti1Image(label, affine), root / "labelsTr" / name)


def make_dataset(root: Path, cases: int, size: int, slices: tuple[int, int], workers: int) -> None:
    (root / "imagesTr").mkdir(parents=True, exist_ok=True)
    (root / "labelsTr").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    jobs = [(root, i, size, int(rng.integers(slices[0], slices[1] + 1))) for i in range(1, cases + 1)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(make_case, jobs))
    training = [{"image": f"./imagesTr/lung_{i:03d}.nii.gz", "label": f"./labelsTr/lung_{i:03d}.nii.gz"}
                for i in range(1, cases + 1)]
    (root / "dataset.json").write_text(json.dumps({"name": "Lung (synthetic)", "training": training}))


def random_checkpoint(path: Path, micro: bool) -> None:
    import torch
    from monai.bundle import ConfigParser

    torch.manual_seed(0)
    parser = ConfigParser()
    parser.read_config([str(REPO / "bundle" / "configs" / "train.json")] + ([str(MICRO / "network.json")] if micro else []))
    torch.save(parser.get_parsed_content("network_def").state_dict(), path)


def iterations_per_second(log: Path) -> float | None:
    stamps = [datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f") for m in map(ITER_TIME.match, log.read_text().splitlines()) if m]
    if len(stamps) < 2:
        return None
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]).total_seconds()


def summarise(run: Path) -> dict:
    doc = json.loads((run / "output.json").read_text())
    rt, out, env = doc["runtime"], doc["output"], doc["environment"]
    log = run / "logs" / "finetune.log"
    return {
        "device": env.get("gpu_name") or "cpu", "gpu_total_mb": env.get("gpu_total_mb"),
        "packages": {k: env["packages"].get(k) for k in ("torch", "monai", "numpy")},
        "status": doc["status"], "return_code": rt["return_code"], "patch_size": doc["plan"]["patch_size"],
        "phase_seconds": rt["phase_seconds"], "phase_peak_gpu_mb": rt["phase_peak_gpu_mb"],
        "phase_gpu_samples": rt.get("phase_gpu_samples"), "phase_peak_rss_mb": rt.get("phase_peak_rss_mb"),
        "train_iterations": out.get("train_iterations"),
        "iterations_per_second": iterations_per_second(log) if log.is_file() else None,
        "formal_dice": [out.get("formal_pretrained_val_dice"), out.get("formal_finetuned_val_dice")],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="work dir: dataset, checkpoint, run")
    parser.add_argument("--summary", type=Path, help="where the summary JSON goes (default OUT/gpu_check_summary.json)")
    parser.add_argument("--cases", type=int, default=63)
    parser.add_argument("--size", type=int, default=512, help="in-plane voxels")
    parser.add_argument("--slices", type=int, nargs=2, default=[100, 250])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=8, help="processes that write the dataset")
    parser.add_argument("--micro", action="store_true", help="the micro VISTA3D and --allow-cpu: a CPU rehearsal")
    args = parser.parse_args()
    started = time.monotonic()
    data, run = args.out / "Task06_synthetic", args.out / "run"
    make_dataset(data, args.cases, args.size, tuple(args.slices), args.workers)
    ckpt = args.out / "random_init.pt"
    random_checkpoint(ckpt, args.micro)
    print(f"gpu_check: dataset and checkpoint ready in {time.monotonic() - started:.1f} s", flush=True)
    cmd = [sys.executable, str(REPO / "scripts" / "run_finetune.py"), str(data), "--sanity", "--epochs", str(args.epochs),
           "--pretrained-ckpt", str(ckpt), "--output-dir", str(run)]
    if args.micro:
        cmd += ["--network-config", str(MICRO / "network.json"), "--allow-cpu", "--patch-size", "64", "--cache-rate", "1"]
    code = subprocess.run(cmd).returncode
    summary = summarise(run) | {"wrapper_exit": code, "wall_seconds": round(time.monotonic() - started, 1),
                                "cases": args.cases, "size": args.size, "slices": args.slices}
    (args.summary or args.out / "gpu_check_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print("gpu_check:", json.dumps(summary, indent=2))
    return 0 if code in (0, 4) else code


if __name__ == "__main__":
    raise SystemExit(main())
