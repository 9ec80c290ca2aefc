"""Benchmark: comparing two full-size vista3d132 checkpoints, in the wrapper and in the verifier.

Writes two checkpoints with the exact stored layout of vista3d132 (nvseg_bench/data/
vista3d132_layout.json: 259 float32 tensors, 218M values, about 832 MiB each), random values, the
second equal to the first but for one changed tensor. Then runs each comparison in a fresh process
and prints its seconds and its extra peak RSS (peak resident memory during the comparison minus the
resident memory just before it, with torch already imported), --rounds times in turn, so the page
cache is as warm for one as for the other. Target: at most 5 s and < 1 GiB.
Prints figures; asserts nothing.

    python benchmarks/ckpt_compare_bench.py [--work /tmp/nvseg_ckpt_bench] [--keep]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# Each snippet runs in its own process; it resets the kernel's peak-RSS mark (clear_refs 5) after its
# imports, so the figure is what the comparison itself added.
PROBE = """
import json, sys, time
sys.path.insert(0, {repo!r})
import torch
{setup}
def rss(field):
    for line in open('/proc/self/status'):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
open('/proc/self/clear_refs', 'w').write('5')
base = rss('VmRSS:')
started = time.perf_counter()
result = {call}
seconds = time.perf_counter() - started
print(json.dumps({{'seconds': seconds, 'extra_peak_rss': rss('VmHWM:') - base, 'result': result}}))
"""

WRAPPER = ("from nvseg_bench.model.checkpoints import compare_checkpoints",
           "compare_checkpoints(Path(sys.argv[1]), Path(sys.argv[2]))")
VERIFIER = ("from eval_engine.recompute import compare_state_files",
            "compare_state_files(Path(sys.argv[1]), Path(sys.argv[2]))")


def write_checkpoints(work: Path) -> tuple[Path, Path]:
    import torch

    keys = json.loads((REPO / "nvseg_bench" / "data" / "vista3d132_layout.json").read_text())["keys"]
    generator = torch.Generator().manual_seed(0)
    state = {name: torch.randn(shape, generator=generator) * 0.02 for name, shape in keys.items()}
    work.mkdir(parents=True, exist_ok=True)
    pretrained, finetuned = work / "pretrained.pt", work / "finetuned.pt"
    torch.save(state, pretrained)
    changed = "image_encoder.encoder.layers.0.blocks.0.conv1.weight"
    state[changed] = state[changed] + 1e-3
    torch.save(state, finetuned)
    os.sync()  # else the first comparison competes with the write-back of 1.7 GB
    return finetuned, pretrained


def measure(name: str, snippet: tuple[str, str], finetuned: Path, pretrained: Path) -> dict:
    setup, call = snippet
    code = PROBE.format(repo=str(REPO), setup="from pathlib import Path\n" + setup, call=call)
    proc = subprocess.run([sys.executable, "-c", code, str(finetuned), str(pretrained)],
                          capture_output=True, text=True, check=True)
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    result = figures["result"]
    verdict = {k: result.get(k) for k in ("n_tensors", "n_changed", "identical", "max_abs_diff")}
    print(f"{name:9s}: {figures['seconds']:.2f} s, extra peak RSS {figures['extra_peak_rss'] / 2**20:.0f} MiB  {verdict}")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/nvseg_ckpt_bench"))
    parser.add_argument("--keep", action="store_true", help="keep the two checkpoints for a rerun")
    parser.add_argument("--rounds", type=int, default=2, help="measure each comparison this often, alternating")
    args = parser.parse_args()
    finetuned, pretrained = args.work / "finetuned.pt", args.work / "pretrained.pt"
    if not (finetuned.is_file() and pretrained.is_file()):
        finetuned, pretrained = write_checkpoints(args.work)
    size = finetuned.stat().st_size / 2**20
    print(f"two vista3d132-layout checkpoints of {size:.0f} MiB each in {args.work}, one tensor changed")
    try:
        for _ in range(args.rounds):
            measure("wrapper", WRAPPER, finetuned, pretrained)
            measure("verifier", VERIFIER, finetuned, pretrained)
    finally:
        if not args.keep:
            shutil.rmtree(args.work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
