"""Benchmark: how long the trusted verifier takes to audit one evidence pack (pack mode).

    python benchmarks/verifier_bench.py --pack runs/nvseg_smoke [--repeat 3]
    python benchmarks/verifier_bench.py --smoke [--repeat 3]          # the stored smoke pack
    python benchmarks/verifier_bench.py --task06-size WORK [--cases 13] [--repeat 1]

--task06-size builds, once under WORK, a pack the size of an MSD Task06 evaluation: `--cases`
validation cases (13 by default: Task06's fold 0 of 63) at 512 x 512 x 128 voxels, each with its
image, label and both phases' saved predictions (what the verifier reads and re-scores), the bundle's
CSVs and output.json's claims in the smoke pack's shape. The checkpoints stay the smoke pack's tiny
ones: the full-size tensor comparison has its own benchmark (ckpt_compare_bench.py). The claims are
not made consistent; the audit does the same work whatever it finds.

Where the verifier takes trusted inputs (--dataset-dir, --datalist, --pretrained-ckpt) they are
passed, as a grader would. `--engine ROOT` times the eval_engine/ under ROOT instead (e.g. a checkout
of an earlier commit: `git worktree add /tmp/before main`), each audit in a fresh `python -I`
process, so two versions can be timed in turns on one loaded machine. Prints the wall time of each
audit; asserts nothing.
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eval_engine.run_trusted import main  # noqa: E402

SHAPE = (512, 512, 128)  # a Task06 CT is 512 x 512 in-plane; 128 slices is a short one


def _write(path: Path, data, affine) -> None:
    import nibabel

    path.parent.mkdir(parents=True, exist_ok=True)
    nibabel.save(nibabel.Nifti1Image(data, affine), str(path))


def _block(shape: tuple[int, int, int], shift: int):
    import numpy as np

    label = np.zeros(shape, dtype=np.uint8)
    x, y, z = (s // 2 for s in shape)
    label[x - 40 + shift: x + 40 + shift, y - 30: y + 30, z - 20: z + 20] = 1
    return label


def build_task06_size(work: Path, cases: int) -> tuple[Path, Path]:
    """A pack of `cases` Task06-size validation cases under work/pack, its dataset under work/data."""
    import numpy as np

    from tests.helpers import materialize_pack
    from nvseg_bench.evidence.collect import write_manifest

    pack, data = work / "pack", work / "data"
    if (pack / "manifest.json").is_file():
        return pack, data
    shutil.rmtree(work, ignore_errors=True)
    materialize_pack("smoke", pack)
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    entries, files = [], {}
    for phase in ("eval_pretrained", "eval_finetuned"):
        for old in (pack / phase).glob("*_seg.nii.gz"):
            old.unlink()
    rows = {"eval_pretrained": [], "eval_finetuned": []}
    for index in range(cases):
        name = f"lung_{index:03d}"
        label = _block(SHAPE, 0)
        image = np.where(label > 0, 40, -1024).astype(np.int16)
        _write(data / "imagesTr" / f"{name}.nii.gz", image, affine)
        _write(data / "labelsTr" / f"{name}.nii.gz", label, affine)
        entries.append({"image": f"imagesTr/{name}.nii.gz", "label": f"labelsTr/{name}.nii.gz", "fold": 0})
        for phase, shift in (("eval_pretrained", 12), ("eval_finetuned", 4)):
            _write(pack / phase / f"{name}_seg.nii.gz", _block(SHAPE, shift) * 3, affine)
            rows[phase].append((str(data / "imagesTr" / f"{name}.nii.gz"), 0.5, 0.5))
        print(f"built case {index + 1}/{cases}", flush=True)
    (data / "datalist.json").write_text(json.dumps({"training": entries}, indent=1))
    for phase, found in rows.items():
        with (pack / phase / "val_mean_dice_raw.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["filename", "class0", "mean"])
            writer.writerows(found)
    doc = json.loads((pack / "output.json").read_text())
    doc["input"].update(dataset_dir=str(data), datalist=str(data / "datalist.json"), n_val_cases=cases)
    (pack / "output.json").write_text(json.dumps(doc, indent=2))
    for rel in sorted(p.relative_to(data).as_posix() for p in data.rglob("*.nii.gz")):
        from nvseg_bench.store.files import sha256_file

        files[rel] = {"sha256": sha256_file(data / rel), "bytes": (data / rel).stat().st_size}
    inputs = json.loads((pack / "manifest.json").read_text())["inputs"]
    inputs["dataset"] = {"dataset_dir": str(data), "files": files}
    (pack / "manifest.json").unlink()
    write_manifest(pack, inputs)
    return pack, data


# one audit of the eval_engine under argv[1], in its own process; prints its exit code and wall seconds
TIMED = ("import sys, time, io, contextlib; sys.path.insert(0, sys.argv.pop(1)); "
         "from eval_engine.run_trusted import main; started = time.perf_counter()\n"
         "with contextlib.redirect_stdout(io.StringIO()): code = main(sys.argv[1:])\n"
         "print(code, time.perf_counter() - started)")


def trusted_args(pack: Path, data: Path | None, engine: Path = ROOT) -> list[str]:
    """The trusted inputs a grader passes, where that verifier takes them."""
    help_text = subprocess.run([sys.executable, "-I", "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                                "from eval_engine.run_trusted import build_parser; print(build_parser().format_help())",
                                str(engine)], capture_output=True, text=True).stdout
    if "--dataset-dir" not in help_text or data is None:
        return []
    return ["--dataset-dir", str(data), "--datalist", str(data / "datalist.json"),
            "--pretrained-ckpt", str(pack / "pretrained.pt")]


def audit_in_process(engine: Path, argv: list[str]) -> tuple[int, float]:
    proc = subprocess.run([sys.executable, "-I", "-c", TIMED, str(engine), *argv], capture_output=True, text=True,
                          cwd=tempfile.gettempdir())
    code, seconds = proc.stdout.split()[-2:]
    return int(code), float(seconds)


def run() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--pack", type=Path, help="the --output-dir of an nvseg-finetune run")
    which.add_argument("--smoke", type=Path, nargs="?", const=Path(tempfile.gettempdir()) / "verifier_bench_smoke",
                       metavar="WORK", help="the stored smoke pack, materialized under WORK")
    which.add_argument("--task06-size", type=Path, metavar="WORK", help="build (once) and audit a Task06-size pack")
    parser.add_argument("--cases", type=int, default=13)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--engine", type=Path, metavar="ROOT", help="time ROOT/eval_engine, in fresh processes")
    args = parser.parse_args()
    data = None
    if args.task06_size:
        pack, data = build_task06_size(args.task06_size, args.cases)
    elif args.smoke:
        from tests.helpers import FIXTURE, materialize_pack

        shutil.rmtree(args.smoke, ignore_errors=True)
        pack, data = materialize_pack("smoke", args.smoke / "pack"), FIXTURE
    else:
        pack = args.pack
    times = []
    given = trusted_args(pack, data, args.engine or ROOT)
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as out:
            if args.engine:
                code, seconds = audit_in_process(args.engine.resolve(), ["--pack", str(pack), "--out", out, *given])
                times.append(seconds)
                continue
            started = time.perf_counter()
            code = main(["--pack", str(pack), "--out", out, *given])
            times.append(time.perf_counter() - started)
    how = f"{args.engine}/eval_engine, each in a fresh process" if args.engine else "in-process, imports warm after the first"
    print(f"pack mode on {pack}: exit {code}; wall {', '.join(f'{t:.2f}' for t in times)} s "
          f"(best {min(times):.2f} s, {how})")
    return 0


if __name__ == "__main__":
    raise SystemExit(run())
