#!/usr/bin/env python3
"""The skill's documented entry point: `python scripts/run_finetune.py ...` is `nvseg-finetune ...`.

Works from a checkout without installing the package: the repo root goes on sys.path first.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nvseg_bench.cli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
