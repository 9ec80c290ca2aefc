"""Benchmark: what cross-validation costs against the runs it replaces, on the CPU.

    python benchmarks/cv_bench.py [--work DIR] [--epochs N]

On a 10-case copy of the shipped fixture (fixtures/make_cv_copy.py: two cases per fold), micro model,
`--smoke`, it times three things through the real CLI, each with its own empty preprocessing cache
(shared within it, as a user's runs share one):
  single    one single-fold run (fold 0 validates);
  separate  five single-fold runs one after another, fold K validating in the K-th (the datalists of
            `--folds all`'s fold-K/datalist.json), which is what a user would run without --folds;
  cv        `--folds all`: one pretrained evaluation over the 10 cases, five finetunes and evaluations.
Prints the walls and the ratios cv/separate and cv/single with `uptime`'s load before and after, each
member's phase seconds and start-up (the profile of a fold against its separate run), and writes them to
benchmarks/results/cv_bench_<date>.json. Asserts nothing.

    python benchmarks/cv_bench.py --scale [--cases 20 --size 256 --slices 96]

runs the same three on the scale set instead (benchmarks/scale_bench.py's realistic-size CT-like cases,
micro VISTA3D, the recipe of that benchmark: --auto-seg, patch 64, one epoch), where the evaluations
weigh more than on the fixture.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "fixtures"), str(REPO), str(REPO / "benchmarks")]

from make_cv_copy import build  # noqa: E402

from nvseg_bench.inputs.folds import fold_datalist, write_json  # noqa: E402

FOLDS = 5


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def cli(args: list[str], cache: Path, log: Path) -> float:
    """One nvseg-finetune command; its wall in seconds (a failure stops the benchmark)."""
    env = dict(os.environ, XDG_CACHE_HOME=str(cache), PYTHONPATH=str(REPO))
    started = time.monotonic()
    with log.open("w") as out:
        code = subprocess.run([sys.executable, "-m", "nvseg_bench", *args], stdout=out, stderr=subprocess.STDOUT,
                              env=env, cwd=REPO).returncode
    if code != 0:
        raise SystemExit(f"{args} exited {code}; see {log}")
    return round(time.monotonic() - started, 1)


def datalist_for(data: Path, fold: int, target: Path) -> Path:
    """The datalist a separate run for `fold` gets: the one --folds writes as fold-K/datalist.json."""
    return write_json(target, fold_datalist(json.loads((data / "datalist.json").read_text())["training"], fold))


def profile(out: Path) -> dict:
    """A member's phases: seconds, start-up (process start to the engine built), reused or run."""
    runtime = json.loads((out / "output.json").read_text())["runtime"]
    timing = runtime.get("phase_timing") or {}
    return {n: {"seconds": s, "startup_s": (timing.get(n) or {}).get("startup_s"),
                "reused": n in (runtime.get("reused_phases") or {})} for n, s in runtime["phase_seconds"].items()}


def scale_data(work: Path, args: argparse.Namespace) -> tuple[Path, list[str]]:
    """The scale set (five even folds) and the recipe flags of benchmarks/scale_bench.py."""
    from bench_common import MAPPING, MICRO
    from scale_bench import make_dataset

    data = work / f"scale_{args.cases}x{args.size}x{args.slices}"
    make_dataset(data, args.cases, args.cases // FOLDS, args.size, args.slices)
    return data, [str(data), "--label-mapping", json.dumps(MAPPING), "--auto-seg", "--epochs", str(args.epochs or 1),
                  "--patch-size", "64", "--pretrained-ckpt", str(MICRO / "model.pt"),
                  "--network-config", str(MICRO / "network.json")]


def run() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="where the copy and the runs go (default: a temporary dir)")
    parser.add_argument("--epochs", type=int, help="--epochs for every run (default: the smoke preset's)")
    parser.add_argument("--scale", action="store_true", help="the scale set instead of the fixture copy")
    parser.add_argument("--cases", type=int, default=20, help="--scale: cases (a fifth in each fold)")
    parser.add_argument("--size", type=int, default=256, help="--scale: in-plane voxels")
    parser.add_argument("--slices", type=int, default=96, help="--scale: slices")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="nvseg-cv-bench-"))
    if args.scale:
        data, common = scale_data(work, args)
    else:
        data = build(work / "data")
        common = [str(data), "--smoke"] + (["--epochs", str(args.epochs)] if args.epochs else [])
    before = load()
    walls: dict[str, float] = {}
    single_list = datalist_for(data, 0, work / "fold0.json")
    walls["single"] = cli(common + ["--datalist", str(single_list), "--output-dir", str(work / "single")],
                          work / "cache-single", work / "single.log")
    separate = []
    for fold in range(FOLDS):
        datalist = datalist_for(data, fold, work / f"fold{fold}.json")
        separate.append(cli(common + ["--datalist", str(datalist), "--output-dir", str(work / f"separate-{fold}")],
                            work / "cache-separate", work / f"separate-{fold}.log"))
    walls["separate"] = round(sum(separate), 1)
    walls["cv"] = cli(common + ["--folds", "all", "--output-dir", str(work / "cv")], work / "cache-cv", work / "cv.log")
    after = load()
    cv_doc = json.loads((work / "cv" / "cv.json").read_text())
    profiles = {"separate": [profile(work / f"separate-{k}") for k in range(FOLDS)],
                "cv_folds": [profile(work / "cv" / f"fold-{k}") for k in range(FOLDS)]}
    result = {"date": dt.date.today().isoformat(), "set": "scale" if args.scale else "fixture copy",
              "cases": args.cases if args.scale else 10, "folds": FOLDS, "epochs": args.epochs, "profiles": profiles,
              "walls_s": walls, "separate_runs_s": separate,
              "cv_over_separate": round(walls["cv"] / walls["separate"], 3),
              "cv_over_single": round(walls["cv"] / walls["single"], 2),
              "cv_headline": cv_doc["headline"], "load_before": before, "load_after": after,
              "python": sys.version.split()[0], "cpu_count": os.cpu_count(), "work": str(work)}
    target = REPO / "benchmarks" / "results" / f"cv_bench_{result['date']}.json"
    kept = json.loads(target.read_text()) if target.is_file() else {"about": "runs of benchmarks/cv_bench.py"}
    kept["runs"] = [*kept.get("runs", []), result]  # a later run of the day adds to the file, never replaces it
    target.write_text(json.dumps(kept, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(run())
