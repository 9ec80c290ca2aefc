"""Benchmark: the full-size path on the CPU, end to end, with the full vista3d132.

A randomly initialised vista3d132 (218M parameters, standing in for the pretrained checkpoint) goes
through all three phases on a tiny set (3 cases of 64^3 at 1.5 mm, one in fold 0), 1 epoch, patch
64^3, `--allow-cpu`: the full-size config, checkpoint load and save, the layout check, the
checkpoint comparison, telemetry and sizes are exercised without a GPU. Prints the wall, the phase
split and what the run recorded; asserts nothing. About 26 s per training step on 2 free cores.

    python benchmarks/full_rehearsal.py [--work /tmp/nvseg_full_rehearsal]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from bench_common import MAPPING, random_checkpoint  # noqa: E402
from scale_bench import make_dataset  # noqa: E402

from nvseg_bench.phases.runner import bundle_env  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/nvseg_full_rehearsal"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    datalist = make_dataset(args.work / "ct_3x64", 3, 1, 64, 64, spacing=(1.5, 1.5, 1.5))
    ckpt = args.work / "vista3d132_random.pt"
    if not ckpt.is_file():
        random_checkpoint(ckpt, micro=False)
    print(f"full_rehearsal: data and a random vista3d132 ready in {time.monotonic() - started:.1f} s", flush=True)
    out = args.work / "run"
    cmd = [sys.executable, "-m", "nvseg_bench", str(datalist.parent), "--datalist", str(datalist), "--output-dir", str(out),
           "--label-mapping", json.dumps(MAPPING), "--auto-seg", "--epochs", "1", "--patch-size", "64",
           "--pretrained-ckpt", str(ckpt), "--allow-cpu", "--preprocess-cache", str(args.work / "preprocess_cache")]
    run_started = time.monotonic()
    code = subprocess.run(cmd, cwd=REPO, env=bundle_env(REPO, allocator=False)).returncode
    wall = time.monotonic() - run_started
    doc = json.loads((out / "output.json").read_text())
    rt, o = doc["runtime"], doc["output"]
    summary = {"exit": code, "status": doc["status"], "wall_seconds": round(wall, 1),
               "phase_seconds": rt["phase_seconds"], "phase_timing": rt.get("phase_timing"),
               "phase_peak_rss_mb": rt.get("phase_peak_rss_mb"),
               "checkpoint_bytes": (out / "checkpoints" / "model_finetune.pt").stat().st_size
               if (out / "checkpoints" / "model_finetune.pt").is_file() else None,
               "n_changed": (o.get("checkpoint_comparisons_to_pretrained") or {}).get("n_changed"),
               "n_tensors": (o.get("checkpoint_comparisons_to_pretrained") or {}).get("n_tensors"),
               "formal_dice": [o.get("formal_pretrained_val_dice"), o.get("formal_finetuned_val_dice")]}
    (args.work / "full_rehearsal_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print("full_rehearsal:", json.dumps(summary, indent=2))
    return 0 if code == 0 else code


if __name__ == "__main__":
    raise SystemExit(main())
