"""Benchmark: how long the trusted verifier takes to audit one evidence pack (pack mode).

    python benchmarks/verifier_bench.py --pack runs/nvseg_smoke [--repeat 3]

Prints the wall time of each audit and of its slowest findings' groups; asserts nothing.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eval_engine.run_trusted import main  # noqa: E402


def run() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pack", type=Path, required=True, help="the --output-dir of an nvseg-finetune run")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    times = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as out:
            started = time.perf_counter()
            code = main(["--pack", str(args.pack), "--out", out])
            times.append(time.perf_counter() - started)
    print(f"pack mode on {args.pack}: exit {code}; wall {', '.join(f'{t:.2f}' for t in times)} s "
          f"(best {min(times):.2f} s, in-process, imports warm after the first)")
    return 0


if __name__ == "__main__":
    raise SystemExit(run())
