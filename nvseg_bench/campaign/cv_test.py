"""A cross-validation's test split: the datalist's labelled `testing` cases are never folded in (the folds
come from its training entries only, and a testing case listed there too is refused before any phase).
After every fold has run they are scored once, in OUT/eval_test_pretrained and OUT/eval_test_finetuned, with
the pretrained checkpoint and the representative fold's scored checkpoint (the recommended one whenever the
CV keeps a finetuned checkpoint), through the same staged datalist a single run uses (inputs/testing.py).
The CV's verdict stays the pooled one (`verdict_split: cv`); `output.test` reports the testing cases beside it.
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from nvseg_bench.campaign.members import with_values
from nvseg_bench.evidence import test_split
from nvseg_bench.inputs import testing
from nvseg_bench.phase_names import EVAL_FINETUNED, EVAL_TEST_FINETUNED, EVAL_TEST_PRETRAINED
from nvseg_bench.phases.loop import run_phases
from nvseg_bench.phases.runner import PhaseResult
from nvseg_bench.prepared import Prepared


def score_testing(first: Prepared, split: testing.TestSplit | None, cv: dict[str, Any],
                  out_dir: Path) -> tuple[dict[str, Any] | None, dict[str, PhaseResult]]:
    """output.test of the CV and the two phases' results; (None, {}) without labelled testing cases or a
    scored checkpoint. `first`: any fold's prepared run (their eval stacks differ only in the datalist)."""
    kept = cv.get("scored_checkpoint") or {}
    if split is None or not split.entries or not kept.get("exists") or EVAL_FINETUNED not in first.commands:
        return None, {}
    datalist = testing.stage(split, out_dir / "configs")
    base = first.commands[EVAL_FINETUNED]
    commands = {name: with_values(base, {"ckpt_path": str(ckpt), "output_dir": str(out_dir / name),
                                         "data_list_file_path": str(datalist), "fold": "0"})
                for name, ckpt in ((EVAL_TEST_PRETRAINED, first.weights.path), (EVAL_TEST_FINETUNED, kept["path"]))}
    whole = replace(first, out_dir=out_dir, test_split=split, commands=commands)
    run = run_phases(whole, time.time())
    scores = test_split.gather(whole, run.results)
    return test_split.output_fields(scores, False, whole), run.results  # the verdict is the pooled one: no warning here
