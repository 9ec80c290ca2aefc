"""Benchmark: the bundle by hand against `nvseg-finetune`, on the same CT-like set, weights and recipe.

Writes N synthetic abdominal CTs with a spleen label (fixtures/phantom.py, via make_spleen_micro's
case painter; default 20 cases of 256x256x96 at 0.78x0.78x2.5 mm, gzip, 4 in fold 0), then runs
  (a) by hand: three `python -m monai.bundle run` calls (eval pretrained, train, eval finetuned) with
      only the recipe on the command line and the bundle's defaults otherwise;
  (b) `nvseg-finetune` on the same data (with --repeat, again: a second run on the same files).
Prints both walls, their ratio, and per phase start-up (process start to the engine built: imports,
network, dataset caching), engine, teardown (last engine completion to process exit), and the
wrapper's time outside its phases. Targets on the 2-core CPU: ours <= 0.7x by hand, a second run
<= 0.5x the first, outside the phases <= 5% of the wall. Prints figures; asserts nothing.

    python benchmarks/scale_bench.py [--work /tmp/nvseg_scale] [--cases 20 --size 256 --slices 96] [--repeat 2]
    python benchmarks/scale_bench.py --full ...     # randomly initialised vista3d132, for GPU machines
    python benchmarks/scale_bench.py --bundle-dir /tmp/NV-Segment-CT ...   # NVIDIA's configs on both sides
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "fixtures"), str(REPO / "benchmarks")]

import make_spleen_micro  # noqa: E402
from bench_common import BUNDLE, MAPPING, MICRO, by_hand, random_checkpoint  # noqa: E402

from nvseg_bench.phases.runner import bundle_env  # noqa: E402

SPACING = (0.78, 0.78, 2.5)


def _paint(job: tuple[make_spleen_micro.CaseSpec, int, Path]) -> None:
    make_spleen_micro.make_case(*job)


def make_dataset(root: Path, cases: int, val_cases: int, size: int, slices: int,
                 spacing: tuple[float, float, float] = SPACING) -> Path:
    """N cases, the first `val_cases` in fold 0, the rest spread over folds 1-4; returns the datalist."""
    for sub in ("imagesTr", "labelsTr"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    specs = [make_spleen_micro.CaseSpec(f"case_{i:03d}", "RAS", (size, size, slices), spacing,
                                        fold=0 if i <= val_cases else 1 + (i - val_cases - 1) % 4)
             for i in range(1, cases + 1)]
    todo = [(spec, i, root) for i, spec in enumerate(specs, start=1)
            if not (root / "labelsTr" / f"{spec.name}.nii.gz").is_file()]
    with ProcessPoolExecutor(max_workers=2) as pool:
        list(pool.map(_paint, todo))
    datalist = root / "datalist.json"
    entries = [{"image": f"imagesTr/{s.name}.nii.gz", "label": f"labelsTr/{s.name}.nii.gz", "fold": s.fold} for s in specs]
    datalist.write_text(json.dumps({"training": entries}, indent=2) + "\n")
    return datalist


def weights(work: Path, full: bool) -> tuple[Path, Path | None]:
    if not full:
        return MICRO / "model.pt", MICRO / "network.json"
    ckpt = work / "vista3d132_random.pt"
    if not ckpt.is_file():
        random_checkpoint(ckpt, micro=False)
    return ckpt, None


def ours(work: Path, name: str, data: Path, datalist: Path, ckpt: Path, network: Path | None,
         args: argparse.Namespace) -> dict:
    out = work / name
    shutil.rmtree(out, ignore_errors=True)  # a run of an earlier benchmark, not user data
    cmd = [sys.executable, "-m", "nvseg_bench", str(data), "--datalist", str(datalist), "--output-dir", str(out),
           "--label-mapping", json.dumps(MAPPING), "--auto-seg", "--epochs", str(args.epochs),
           "--patch-size", str(args.patch), "--pretrained-ckpt", str(ckpt), "--bundle-dir", str(args.bundle_dir),
           *args.ours_args]
    if network:
        cmd += ["--network-config", str(network)]
    started = time.monotonic()
    code = subprocess.run(cmd, cwd=REPO, env=bundle_env(REPO, allocator=False), capture_output=True, text=True).returncode
    wall = time.monotonic() - started
    runtime = json.loads((out / "output.json").read_text())["runtime"]
    reused = runtime.get("reused_phases") or {}  # kept from an earlier run: its seconds were not spent here
    phases = {n: {"seconds": s, "return_code": runtime.get("phase_return_codes", {}).get(n), "reused": n in reused,
                  **(runtime.get("phase_timing") or {}).get(n, {})} for n, s in runtime["phase_seconds"].items()}
    outside = wall - sum(s for n, s in runtime["phase_seconds"].items() if n not in reused)
    return {"wall_seconds": round(wall, 1), "exit": code, "outside_phases_seconds": round(outside, 1),
            "outside_phases_share": round(outside / wall, 3), "phases": phases,
            "preprocess_cache": runtime.get("preprocess_cache")}


def numbers_by_hand(work: Path) -> dict:
    """What the by-hand runs report: formal Dice from each evaluation's metrics.csv, the training trace from its log."""
    from nvseg_bench.evidence.collect import formal_dice
    from nvseg_bench.phases.logparse import parse_lines

    out = work / "by_hand"
    log = out / "finetune.log"
    facts = parse_lines(log.read_text(errors="replace").splitlines()) if log.is_file() else None
    return {"formal_pretrained_val_dice": formal_dice(out / "eval_pretrained"),
            "formal_finetuned_val_dice": formal_dice(out / "eval_finetuned"),
            "val_dice_per_epoch": [facts.val_dice[e] for e in sorted(facts.val_dice)] if facts else None}


def numbers_ours(out: Path) -> dict:
    doc = json.loads((out / "output.json").read_text())["output"]
    return {key: doc.get(key) for key in ("formal_pretrained_val_dice", "formal_finetuned_val_dice", "val_dice_per_epoch")}


def _row(name: str, phase: dict) -> str:
    def f(v: float | None) -> str:
        return "    -" if v is None else f"{v:5.1f}"

    if phase.get("reused"):
        return f"  {name:16s} reused from an earlier identical run (runtime.reused_phases)"

    return (f"  {name:16s} {phase['seconds']:6.1f} s  start-up {f(phase.get('startup_s'))}  engine {f(phase.get('engine_s'))}"
            f"  teardown {f(phase.get('teardown_s'))}")


def report(summary: dict) -> None:
    hand = summary.get("by_hand")
    if hand:
        print(f"by hand: {hand['wall_seconds']:.1f} s")
        for name, phase in hand["phases"].items():
            print(_row(name, phase))
    for index, run in enumerate(summary["ours"], start=1):
        ratio = f", {run['wall_seconds'] / hand['wall_seconds']:.2f}x by hand" if hand else ""
        print(f"nvseg-finetune run {index}: {run['wall_seconds']:.1f} s (exit {run['exit']}){ratio}; outside the phases "
              f"{run['outside_phases_seconds']:.1f} s ({100 * run['outside_phases_share']:.1f}%)")
        for name, phase in run["phases"].items():
            print(_row(name, phase))
        if run.get("preprocess_cache"):
            print(f"  preprocess cache: {json.dumps(run['preprocess_cache'])}")
    if hand and summary.get("numbers"):
        same = summary["numbers"]["by_hand"] == summary["numbers"]["ours"]
        print(f"reported numbers identical to the by-hand runs': {same}"
              + ("" if same else f" (by hand {summary['numbers']['by_hand']}, ours {summary['numbers']['ours']})"))
    if len(summary["ours"]) > 1:
        print(f"second run / first: {summary['ours'][1]['wall_seconds'] / summary['ours'][0]['wall_seconds']:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/nvseg_scale_bench"), help="dataset, runs and summary")
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--val-cases", type=int, default=4, help="cases in fold 0")
    parser.add_argument("--size", type=int, default=256, help="in-plane voxels")
    parser.add_argument("--slices", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--patch", type=int, default=64, help="cubic patch edge (the recipe's patch size)")
    parser.add_argument("--full", action="store_true", help="randomly initialised full vista3d132 (GPU machines)")
    parser.add_argument("--repeat", type=int, default=1, help="nvseg-finetune runs on the same data (2: a second run)")
    parser.add_argument("--skip-by-hand", action="store_true")
    parser.add_argument("--bundle-dir", type=Path, default=BUNDLE,
                        help="the bundle both sides drive, e.g. an unchanged upstream NV-Segment-CT/ folder "
                             "(default: this project's bundle/)")
    parser.add_argument("--ours-args", nargs=argparse.REMAINDER, default=[], help="more nvseg-finetune flags (last)")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    data = args.work / f"ct_{args.cases}x{args.size}x{args.size}x{args.slices}"
    datalist = make_dataset(data, args.cases, args.val_cases, args.size, args.slices)
    ckpt, network = weights(args.work, args.full)
    print(f"scale_bench: {args.cases} cases of {args.size}x{args.size}x{args.slices} ready in "
          f"{time.monotonic() - started:.1f} s; {'full vista3d132' if args.full else 'micro VISTA3D'}", flush=True)
    summary: dict = {"cases": args.cases, "size": args.size, "slices": args.slices, "epochs": args.epochs,
                     "patch": args.patch, "full": args.full, "bundle": str(args.bundle_dir)}
    if not args.skip_by_hand:
        summary["by_hand"] = by_hand(args.work, data, datalist, ckpt, network, epochs=args.epochs, patch=args.patch,
                                     bundle=args.bundle_dir.resolve())
    summary["ours"] = [ours(args.work, f"ours_{i}", data, datalist, ckpt, network, args) for i in range(1, args.repeat + 1)]
    if not args.skip_by_hand:
        summary["numbers"] = {"by_hand": numbers_by_hand(args.work), "ours": numbers_ours(args.work / "ours_1")}
    (args.work / "scale_bench_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    report(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
