"""Benchmark: the sliding-window batch size of the formal evaluation, for time and for sameness.

The windows of one volume are independent, so scoring several per forward pass (`sw_batch_size`)
can only change speed, unless batched arithmetic changes the floats. This runs the bundle's
evaluate stack on the scale benchmark's CT-like set (benchmarks/scale_bench.py makes it) once per
batch size and prints the seconds, the per-case Dice, and whether every saved prediction equals the
batch-size-1 one voxel for voxel. A speed-up that moves a Dice value is a bug, so a size is only
worth adopting where both columns say "same". Prints figures; asserts nothing.

    python benchmarks/sw_batch_bench.py [--work /tmp/nvseg_scale_bench] [--sizes 1 2 4]
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import nibabel
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from bench_common import BUNDLE, MAPPING, MICRO  # noqa: E402

from nvseg_bench.evidence.collect import per_case_dice  # noqa: E402
from nvseg_bench.phases.runner import PhaseSpec, bundle_command, bundle_env, command_prefix, run_phase  # noqa: E402


def evaluate(work: Path, data: Path, datalist: Path, size: int, patch: int) -> tuple[float, dict[str, float], Path]:
    out = work / f"sw_batch_{size}"
    configs = BUNDLE / "configs"
    stack = [configs / "train.json", configs / "train_continual.json", configs / "evaluate.json", MICRO / "network.json"]
    edge = json.dumps([patch] * 3)
    values = {"dataset_dir": str(data), "data_list_file_path": str(datalist), "fold": "0",
              "label_mappings": json.dumps({"default": MAPPING}), "patch_size": edge, "patch_size_valid": edge,
              "drop_label_prob": "0.0", "drop_point_prob": "1.0", "sw_batch_size": str(size),
              "ckpt_path": str(MICRO / "model.pt"), "output_dir": str(out)}
    cmd = bundle_command(command_prefix(1), [str(p) for p in stack], BUNDLE, values)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    result = run_phase(PhaseSpec("eval", 1, 1, cmd, out / "eval.log"), cwd=out, env=bundle_env(BUNDLE), stream=io.StringIO())
    if result.return_code != 0:
        raise SystemExit(f"sw_batch_size {size}: the eval phase failed; see {out / 'eval.log'}")
    return time.monotonic() - started, per_case_dice(out), out


def same_predictions(a: Path, b: Path) -> bool:
    first = sorted(a.rglob("*_seg.nii.gz"))
    second = sorted(b.rglob("*_seg.nii.gz"))
    if [p.name for p in first] != [p.name for p in second] or not first:
        return False
    return all(np.array_equal(np.asanyarray(nibabel.load(x).dataobj), np.asanyarray(nibabel.load(y).dataobj))
               for x, y in zip(first, second))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/nvseg_scale_bench"), help="the scale benchmark's work dir")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--patch", type=int, default=64)
    args = parser.parse_args()
    sets = sorted(args.work.glob("ct_*/datalist.json"))
    if not sets:
        raise SystemExit(f"no scale benchmark set under {args.work}; run benchmarks/scale_bench.py first")
    datalist = sets[0]
    runs = {size: evaluate(args.work, datalist.parent, datalist, size, args.patch) for size in args.sizes}
    base_seconds, base_dice, base_dir = runs[args.sizes[0]]
    print(f"set {datalist.parent.name}, fold 0: {len(base_dice)} cases, patch {args.patch}^3")
    for size, (seconds, dice, out) in runs.items():
        same_dice = "same" if dice == base_dice else "DIFFERENT"
        same_pred = "same" if same_predictions(base_dir, out) else "DIFFERENT"
        print(f"  sw_batch_size {size}: {seconds:6.1f} s ({seconds / base_seconds:.2f}x)  Dice {same_dice}  "
              f"predictions {same_pred}  mean Dice {np.mean(list(dice.values())):.6f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
