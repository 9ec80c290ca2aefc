"""The harness's side of the history: the opt-in `baseline` gate (each run beside its saved
baseline, failed by --nvseg-compare-fail on a real regression), its JUnit properties and terminal
lines, and saving each judged run at the session's end (--nvseg-autosave, controller only).

The record, the store, the comparison and the rule live in nvseg_bench/history/.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nvseg_bench.history.compare import compare, describe, describe_differences
from nvseg_bench.history.record import build_record
from nvseg_bench.history.regression import check_regression as judge
from nvseg_bench.history.storage import FileStorage, UnknownRun
from nvseg_bench.harness.gates import Verdict, bad, ok, skip
from nvseg_bench.harness.ledger import Ledger, RunRecord
from nvseg_bench.harness.options import HarnessOptions
from nvseg_bench.harness.runs import RunEvidence

TREND_RUNS = 30  # saved runs the report's trend plot shows, newest last


def _manifest(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "manifest.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except ValueError:
        return None


def _baseline_said(base: dict[str, Any]) -> str:
    commit = f", commit {base['git_commit'][:10]}" if base.get("git_commit") else ""
    return f"vs {base['run_id']} ({base.get('saved_at')}{commit})"


def judge_baseline(run: RunEvidence, opts: HarnessOptions) -> tuple[Verdict, dict[str, Any] | None]:
    """The baseline gate's verdict and the comparison behind it (None when nothing was compared)."""
    if opts.compare is None:
        return skip("off (--nvseg-compare sets each run beside its saved baseline; --nvseg-compare-fail fails a "
                    "regression)"), None
    storage = FileStorage(opts.storage)
    try:
        base = storage.baseline(run.name, opts.compare)
    except UnknownRun as exc:
        return bad(f"{exc}; `nvseg-finetune history {storage.root}` lists them"), None
    if base is None:
        return skip(f"no passed {run.name} run saved in {storage.root} to compare with; --nvseg-autosave saves this one"), None
    if base.get("name") != run.name:
        return skip(f"{base['run_id']} is a {base.get('name')} run; this is {run.name}: not compared"), None
    current = build_record(run.doc or {}, _manifest(run.out), name=run.name, out=run.out)
    comparison = compare(base, current)
    said = f"{_baseline_said(base)}: {describe(comparison)}; {describe_differences(comparison)}"
    judgements = judge(comparison, opts.compare_fail)
    failed = [j.message for j in judgements if j.status == "failed"]
    warned = [j.message for j in judgements if j.status == "warned"]
    if failed:
        return bad(f"regression: {'; '.join(failed)} [{said}]"), comparison
    if warned:
        return ok(f"{'; '.join(warned)} [{said}]", note=True), comparison
    return ok(said), comparison


def comparison_properties(comparison: dict[str, Any] | None) -> list[tuple[str, str]]:
    """JUnit properties of the baseline item: the baseline's id, the Dice difference, its interval, pairing."""
    if comparison is None:
        return []
    dice = comparison["formal_dice"]
    ci = "" if not dice["ci"] else f"{dice['ci'][0]:+.4f}..{dice['ci'][1]:+.4f}"
    diff = "" if dice["diff"] is None else f"{dice['diff']:+.4f}"
    return [("nvseg_baseline", str(comparison["baseline"])), ("nvseg_baseline_dice_diff", diff),
            ("nvseg_baseline_dice_ci", ci), ("nvseg_baseline_paired", str(dice["paired"]).lower()),
            ("nvseg_comparison", json.dumps(comparison))]


def save_runs(ledger: Ledger, opts: HarnessOptions, root: Path | None) -> list[str]:
    """Save a record of every judged run (its output.json with `gates`) in the store; the files written."""
    storage, saved = FileStorage(opts.storage), []
    for record in ledger.runs.values():
        doc = record.output_json()
        if doc is None or record.out is None:
            continue
        saved.append(str(storage.save(build_record(doc, _manifest(Path(record.out)), name=record.name,
                                                   verdict=record.verdict, root=root, out=Path(record.out)))))
    return saved


def attach_history(ledger: Ledger, opts: HarnessOptions) -> None:
    """Each run's saved history (its name, newest TREND_RUNS) on its record, for the report's trend plot."""
    records = FileStorage(opts.storage).records()
    for record in ledger.runs.values():
        record.history = [r for r in records if r.get("name") == record.name][-TREND_RUNS:]


def baseline_lines(record: RunRecord) -> list[str]:
    """The terminal table's line for a run's comparison with its baseline."""
    comparison = record.comparison
    if comparison is None:
        return []
    return [f"  {record.name} vs baseline {comparison['baseline']}: {describe(comparison)}",
            f"  {record.name} vs baseline: {describe_differences(comparison)}"]
