"""GPU check: the full-size model on a real GPU, every step of the GPU issue in one bounded script.

Steps, cheapest and most likely to break first, each with its own time limit inside --deadline:
  user     a user finetune with the full vista3d132 and the plan's patch for the free GPU memory,
           1 epoch on a small subset (fails fast if the full-size path is broken on this machine);
  oom      the same with a patch far too large: exit 3, oom: true, a message naming the patch;
  sanity   `pytest -m sanity --gpu --nvseg-task06=DIR` through the harness (with --nvseg-trusted and a
           report) on the Task06-shaped set: the `--sanity` recipe end to end;
  by_hand  the same data, recipe and weights driven by hand: three `python -m monai.bundle run` calls.
The dataset is Task06-shaped and synthetic (512x512 slices at 0.7-0.9 mm, MSD naming, tumour-like
blobs labelled 1); the "pretrained" checkpoint is a randomly initialised full vista3d132, so the
reference gates fail (exit 4): this check is about time, memory and the full-size path, not Dice.
The summary JSON (figures per step) is rewritten after every step, so a cut-off run still reports.

    python benchmarks/gpu_check.py --work /tmp/gc --summary $OUT/gpu_check_summary.json   # GPU machine
    python benchmarks/gpu_check.py --work /tmp/gc --micro --cases 8 --size 96 --slices 40 48 --epochs 1
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
import time
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import nibabel
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from bench_common import by_hand, random_checkpoint  # noqa: E402
from nvseg_bench.phases.child import run_child  # noqa: E402

MICRO = REPO / "fixtures" / "micro_model"
MAPPING = [[1, 23]]  # MSD Task06 label 1 (tumour) -> VISTA3D lung tumor
ITER_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*Iter: \d+/\d+ -- train_loss")
# the sanity recipe for the by-hand runs (fire reads these: "False" is a bool, "false" a string that is true)
BY_HAND_RECIPE = {"learning_rate": "5e-05", "lr_schedule#activate": "False", "val_at_start": "True", "val_interval": "1",
                  "sw_overlap": "0.625"}
SMALL_CASES = 8  # the user and oom runs' subset: 2 validate, 6 train


def make_case(args: tuple[Path, int, int, int]) -> None:
    root, index, size, slices = args
    if (root / "labelsTr" / f"lung_{index:03d}.nii.gz").is_file():  # written by an earlier call (labels go last)
        return
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


def case_jobs(root: Path, cases: int, size: int, slices: tuple[int, int]) -> list[tuple[Path, int, int, int]]:
    rng = np.random.default_rng(0)
    return [(root, i, size, int(rng.integers(slices[0], slices[1] + 1))) for i in range(1, cases + 1)]


def write_lists(root: Path, cases: int, val_cases: int) -> tuple[Path, Path]:
    """MSD dataset.json, a datalist with the first `val_cases` in fold 0, and the small subset's datalist."""
    names = [f"lung_{i:03d}.nii.gz" for i in range(1, cases + 1)]
    pairs = [{"image": f"imagesTr/{n}", "label": f"labelsTr/{n}"} for n in names]
    (root / "dataset.json").write_text(json.dumps({"name": "Lung (synthetic)", "training": pairs}))
    folds = [0 if i < val_cases else 1 + (i - val_cases) % 4 for i in range(cases)]
    full = root.parent / "datalist_full.json"
    full.write_text(json.dumps({"training": [p | {"fold": f} for p, f in zip(pairs, folds)]}, indent=1))
    small = root.parent / "datalist_small.json"
    small.write_text(json.dumps({"training": [p | {"fold": 0 if i < 2 else 1} for i, p in enumerate(pairs[:SMALL_CASES])]}))
    return full, small


def iterations_per_second(log: Path) -> float | None:
    if not log.is_file():
        return None
    stamps = [datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f") for m in map(ITER_TIME.match, log.read_text().splitlines()) if m]
    if len(stamps) < 2:
        return None
    return round((len(stamps) - 1) / (stamps[-1] - stamps[0]).total_seconds(), 2)


def run_bounded(cmd: list[str], timeout: float, log: Path, env: dict[str, str]) -> tuple[int | None, float]:
    """Run `cmd` with output to `log`; on timeout the whole process group is stopped (the bundle phases
    are grandchildren and would otherwise keep the GPU). Returns (exit code or None, seconds)."""
    with log.open("w") as sink:
        run = run_child(cmd, cwd=REPO, env=env, log=sink, timeout=max(1.0, timeout))
    return (None if run.timed_out else run.return_code), run.seconds


def run_figures(run: Path) -> dict[str, Any]:
    """What a finished nvseg-finetune run dir says about time and memory."""
    path = run / "output.json"
    if not path.is_file():
        return {"output_json": False}
    doc = json.loads(path.read_text())
    rt, out, env, plan = doc["runtime"], doc["output"], doc["environment"], doc["plan"]
    gpu = rt.get("phase_gpu_samples") or {}
    finetune_peak, expected = (rt.get("phase_peak_gpu_mb") or {}).get("finetune"), plan.get("expected_peak_gpu_mb")
    return {
        "finetune_peak_over_expected": round(finetune_peak / expected, 3) if finetune_peak and expected else None,
        "status": doc["status"], "return_code": rt["return_code"], "error": doc.get("error"),
        "device": env.get("gpu_name") or "cpu", "gpu_total_mb": env.get("gpu_total_mb"), "gpu_free_mb": env.get("gpu_free_mb"),
        "packages": {k: env.get("packages", {}).get(k) for k in ("torch", "monai", "numpy")},
        "patch_size": plan["patch_size"], "expected_peak_gpu_mb": plan.get("expected_peak_gpu_mb"),
        "num_workers": plan.get("num_workers"), "cache_rate": plan.get("train_dataset_cache_rate"),
        "phase_seconds": rt["phase_seconds"], "phase_timing": rt.get("phase_timing"),
        "phase_peak_gpu_mb": rt["phase_peak_gpu_mb"], "phase_peak_rss_mb": rt.get("phase_peak_rss_mb"),
        "phase_gpu_busy_share": {n: g.get("gpu_busy_share") for n, g in gpu.items()},
        "phase_gpu_util_mean": {n: g.get("gpu_util_mean") for n, g in gpu.items()},
        "phase_smi_peak_gpu_mb": {n: g.get("smi_peak_gpu_mb") for n, g in gpu.items()},
        "train_iterations": out.get("train_iterations"),
        "iterations_per_second": iterations_per_second(run / "logs" / "finetune.log"),
        "formal_dice": [out.get("formal_pretrained_val_dice"), out.get("formal_finetuned_val_dice")],
        "oom": rt.get("oom"), "preprocess_cache": rt.get("preprocess_cache"),
    }


class Check:
    """The steps, the shared paths, and a summary rewritten after each step."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.started = args, time.monotonic()
        self.work = args.work
        self.data = self.work / "lung_synthetic"  # not Task06*: the user run must stay a user finetune
        self.summary_paths = [self.work / "gpu_check_summary.json", *([args.summary] if args.summary else [])]
        earlier = self.summary_paths[0]  # a warm machine's earlier call on the same work dir: keep its steps
        steps = json.loads(earlier.read_text()).get("steps", {}) if earlier.is_file() else {}
        self.summary: dict[str, Any] = {"cases": args.cases, "size": args.size, "slices": args.slices,
                                        "val_cases": args.val_cases, "epochs": args.epochs, "micro": args.micro,
                                        "steps": steps}
        self.env = dict(os.environ, PYTHONUNBUFFERED="1", XDG_CACHE_HOME=str(self.work / "xdg_cache"))

    def left(self) -> float:
        return self.args.deadline - (time.monotonic() - self.started)

    def say(self, text: str) -> None:
        print(f"gpu_check [{time.monotonic() - self.started:6.1f} s] {text}", flush=True)

    def record(self, step: str, figures: dict[str, Any]) -> None:
        self.summary["steps"][step] = figures
        self.summary["wall_seconds"] = round(time.monotonic() - self.started, 1)
        for path in self.summary_paths:
            path.write_text(json.dumps(self.summary, indent=2) + "\n")

    def model_flags(self) -> list[str]:
        flags = ["--pretrained-ckpt", str(self.ckpt)]
        if self.args.bundle_dir:  # else NVIDIA's bundle from the Hugging Face cache, as every non-smoke run
            flags += ["--bundle-dir", str(self.args.bundle_dir)]
        if self.args.micro:
            flags += ["--network-config", str(MICRO / "network.json"), "--allow-cpu"]
        return flags

    def cli(self, step: str, datalist: Path, extra: list[str], budget: float) -> dict[str, Any]:
        out = self.work / step
        cmd = [sys.executable, "-m", "nvseg_bench", str(self.data), "--datalist", str(datalist), "--output-dir", str(out),
               "--label-mapping", json.dumps(MAPPING), "--auto-seg", *self.model_flags(), *extra]
        code, seconds = run_bounded(cmd, min(budget, self.left()), self.work / f"{step}.console.log", self.env)
        return {"exit": code, "seconds": seconds, "command": cmd[2:]} | run_figures(out)

    def user(self, small: Path) -> None:
        self.say("user run: full model, the plan's patch for the free GPU memory, 1 epoch, 8 cases, finetune phase only")
        self.record("user", self.cli("user", small, ["--epochs", "1", "--skip-formal-eval"], 150))

    def oom(self, small: Path) -> None:
        self.say(f"oom run: patch {self.args.oom_patch}^3, expected exit 3")
        fig = self.cli("oom", small, ["--epochs", "1", "--skip-formal-eval", "--patch-size", str(self.args.oom_patch)], 150)
        fig["message_names_patch"] = f"[{self.args.oom_patch}, " in json.dumps((fig.get("error") or {}).get("message", ""))
        self.record("oom", fig)

    def sanity(self, full: Path) -> None:
        self.say("sanity: pytest -m sanity --gpu through the harness (trusted, with a report)")
        flags = shlex.join(["--datalist", str(full), "--epochs", str(self.args.epochs), *self.model_flags()])
        cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--pyargs", "nvseg_bench.harness.gate_items",
               "-m", "sanity", "--gpu", f"--nvseg-task06={self.data}", f"--nvseg-out={self.work / 'harness'}",
               f"--nvseg-report={self.work / 'report'}", "--nvseg-trusted", f"--nvseg-args={flags}", "-rA", "-q",
               f"--junitxml={self.work / 'report' / 'junit.xml'}"]
        if not any(ep.name == "nvseg" for ep in entry_points(group="pytest11")):
            cmd[3:3] = ["-p", "nvseg_bench.harness.plugin"]  # a checkout on PYTHONPATH, not installed
        code, seconds = run_bounded(cmd, min(self.args.sanity_budget, self.left()), self.work / "sanity.console.log", self.env)
        runs = sorted((self.work / "harness").glob("sanity*/output.json"))
        fig = run_figures(runs[-1].parent) if runs else {"output_json": False}
        lines = (self.work / "sanity.console.log").read_text().splitlines()
        items = [ln for ln in lines if ln.startswith(("PASSED", "FAILED", "ERROR", "SKIPPED"))]
        self.record("sanity", {"pytest_exit": code, "seconds": seconds, "items": items} | fig)

    def by_hand(self, full: Path) -> None:
        self.say("by hand: three `python -m monai.bundle run` calls on the same data")

        recipe = BY_HAND_RECIPE | {"label_mappings": json.dumps({"default": MAPPING})}
        patch = self.args.patch or 128
        fig = by_hand(self.work, self.data, full, self.ckpt, MICRO / "network.json" if self.args.micro else None,
                      epochs=self.args.epochs, patch=patch, recipe=recipe, budget=self.left(),
                      device_env={} if not self.args.micro else {"CUDA_VISIBLE_DEVICES": ""},
                      bundle=self.args.bundle_dir or self.hub_bundle())
        self.record("by_hand", fig)

    def hub_bundle(self) -> Path:
        """The bundle our runs use without --bundle-dir, for the by-hand runs to drive too."""
        from nvseg_bench.model.bundle_source import hub_snapshot  # noqa: PLC0415

        return hub_snapshot(download=False)

    def compare(self) -> None:
        steps = self.summary["steps"]
        hand, ours = steps.get("by_hand"), steps.get("sanity")
        if hand and ours and ours.get("phase_seconds") and hand.get("complete"):
            ours_phases = sum(ours["phase_seconds"].values())
            self.summary["ours_over_by_hand"] = round(ours_phases / hand["wall_seconds"], 3)
            self.summary["ours_over_by_hand_note"] = ("sum of our three phases over the by-hand wall; the harness's "
                                                      "pytest session and verifier are not in either")
        self.record("by_hand", steps.get("by_hand", {}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="work dir: dataset, checkpoint, runs (stays out of $OUT)")
    parser.add_argument("--summary", type=Path, help="where the summary JSON goes (default WORK/gpu_check_summary.json)")
    parser.add_argument("--cases", type=int, default=63)
    parser.add_argument("--val-cases", type=int, default=3, help="fold-0 cases of the sanity and by-hand runs")
    parser.add_argument("--size", type=int, default=512, help="in-plane voxels")
    parser.add_argument("--slices", type=int, nargs=2, default=[100, 250])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--patch", type=int, default=None, help="by-hand patch edge (default 128, the sanity recipe's)")
    # 512^3 did not fail on an H100: validation at epoch 0 comes first and fits without gradients, and
    # took over 100 s; at 320^3 one validation window is quick and a training step needs ~117 GB
    parser.add_argument("--oom-patch", type=int, default=320, help="the oom run's cubic patch edge")
    parser.add_argument("--workers", type=int, default=8, help="processes that write the dataset")
    parser.add_argument("--deadline", type=float, default=560, help="seconds for everything; later steps get what is left")
    parser.add_argument("--sanity-budget", type=float, default=300, help="seconds at most for the sanity step")
    parser.add_argument("--steps", default="user,oom,sanity,by_hand")
    parser.add_argument("--micro", action="store_true", help="the micro VISTA3D and --allow-cpu: a CPU rehearsal")
    parser.add_argument("--bundle-dir", type=Path, default=None,
                        help="the bundle every run drives, e.g. a carried upstream NV-Segment-CT/ folder (default: "
                             "NVIDIA's bundle from the Hugging Face cache, as nvseg-finetune uses it)")
    args = parser.parse_args()
    check, steps = Check(args), args.steps.split(",")
    args.work.mkdir(parents=True, exist_ok=True)
    check.data.joinpath("imagesTr").mkdir(parents=True, exist_ok=True)
    check.data.joinpath("labelsTr").mkdir(parents=True, exist_ok=True)
    jobs = case_jobs(check.data, args.cases, args.size, tuple(args.slices))
    full, small = write_lists(check.data, args.cases, args.val_cases)
    pool = ProcessPoolExecutor(max_workers=args.workers)
    first = [pool.submit(make_case, j) for j in jobs[:SMALL_CASES]]
    [f.result() for f in first]
    rest: list[Future] = [pool.submit(make_case, j) for j in jobs[SMALL_CASES:]]  # written while the small runs use the GPU
    check.ckpt = args.work / "random_init.pt"
    if not check.ckpt.is_file():
        random_checkpoint(check.ckpt, args.micro)
    check.say(f"subset of {SMALL_CASES} cases and the random checkpoint ({check.ckpt.stat().st_size / 2**20:.0f} MiB) ready")
    for step in ("user", "oom"):
        if step in steps and check.left() > 60:
            getattr(check, step)(small)
    [f.result() for f in rest]
    pool.shutdown()
    check.say(f"all {args.cases} cases written")
    for step in ("sanity", "by_hand"):
        if step in steps and check.left() > 60:
            getattr(check, step)(full)
    check.compare()
    check.say("summary: " + json.dumps(check.summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
