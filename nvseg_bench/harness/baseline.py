"""The baseline feature, the harness's side of the history: its options (--nvseg-autosave,
--nvseg-storage, --nvseg-compare, --nvseg-compare-fail and their ini keys), the opt-in `baseline` gate
(each run beside its saved baseline, failed by --nvseg-compare-fail on a real regression), its JUnit
properties, terminal lines and report rows, and at the session's end (controller only) saving each
judged run (--nvseg-autosave) and the saved history the report's trend plot reads.

The record, the store, the comparison and the rule live in nvseg_bench/history/.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nvseg_bench.history.compare import compare, describe, describe_differences
from nvseg_bench.history.record import build_record
from nvseg_bench.history.regression import check_regression, parse_threshold
from nvseg_bench.history.storage import DEFAULT_DIR, FileStorage, UnknownRun, store_dir
from nvseg_bench.harness.feature import Feature, Figure, Gate, Verdict, bad, ok, skip
from nvseg_bench.harness.ledger import Ledger, RunRecord
from nvseg_bench.harness.options import HarnessOptions, option_value, switch_on
from nvseg_bench.harness.plots import trend_plot
from nvseg_bench.harness.runs import RunEvidence

TREND_RUNS = 30  # saved runs the report's trend plot shows, newest last


def add_options(group: pytest.OptionGroup, parser: pytest.Parser) -> None:
    """--nvseg-autosave, --nvseg-storage, --nvseg-compare, --nvseg-compare-fail and their ini keys."""
    group.addoption("--nvseg-autosave", action="store_true",
                    help=f"save each judged run's record in the history store (default ROOTDIR/{DEFAULT_DIR})")
    group.addoption("--nvseg-storage", metavar="DIR", help="the history store: a folder or file:///abs/dir "
                                                           f"(default ROOTDIR/{DEFAULT_DIR})")
    group.addoption("--nvseg-compare", nargs="?", const="last", metavar="RUN_ID|last",
                    help="set each run beside its saved baseline of the same name: the newest (last, the default) "
                         "or a run id; adds a `baseline` gate")
    group.addoption("--nvseg-compare-fail", action="append", metavar="METRIC:AMOUNT",
                    help="fail the baseline gate on a regression: formal_dice:0.01, formal_dice:1%%, wall:20%% "
                         "(repeatable; implies --nvseg-compare=last)")
    parser.addini("nvseg_autosave", "default for --nvseg-autosave", type="bool", default=False)
    for name in ("storage", "compare"):
        parser.addini(f"nvseg_{name}", f"default for --nvseg-{name}", type="string", default="")
    parser.addini("nvseg_compare_fail", "default for --nvseg-compare-fail (space-separated)", type="args", default=[])


def read_options(config: pytest.Config) -> dict[str, Any]:
    """The history settings; a bad store URL or threshold is a usage error that names it."""
    given, base = option_value(config, "storage")
    try:
        storage = store_dir(given or DEFAULT_DIR, base if given else config.rootpath)
    except ValueError as exc:
        raise pytest.UsageError(f"--nvseg-storage: {exc}") from None
    try:
        thresholds = [parse_threshold(t) for t in config.getoption("nvseg_compare_fail") or
                      config.getini("nvseg_compare_fail")]
    except ValueError as exc:
        raise pytest.UsageError(f"--nvseg-compare-fail: {exc}") from None
    compare = config.getoption("nvseg_compare") or config.getini("nvseg_compare") or None
    return {"autosave": switch_on(config, "autosave"), "storage": storage,
            "compare": compare or ("last" if thresholds else None), "compare_fail": thresholds}


def _manifest(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "manifest.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except ValueError:
        return None


def _baseline_said(base: dict[str, Any]) -> str:
    commit = f", commit {base['git_commit'][:10]}" if base.get("git_commit") else ""
    return f"vs {base['run_id']} ({base.get('saved_at')}{commit})"


def check_baseline(run: RunEvidence, opts: HarnessOptions) -> Verdict:
    """The baseline gate: the run beside its saved baseline; the comparison rides on the verdict's properties."""
    if opts.compare is None:
        return skip("off (--nvseg-compare sets each run beside its saved baseline; --nvseg-compare-fail fails a "
                    "regression)")
    storage = FileStorage(opts.storage)
    try:
        base = storage.baseline(run.name, opts.compare)
    except UnknownRun as exc:
        return bad(f"{exc}; `nvseg-finetune history {storage.root}` lists them")
    if base is None:
        return skip(f"no passed {run.name} run saved in {storage.root} to compare with; --nvseg-autosave saves this one")
    if base.get("name") != run.name:
        return skip(f"{base['run_id']} is a {base.get('name')} run; this is {run.name}: not compared")
    current = build_record(run.doc or {}, _manifest(run.out), name=run.name, out=run.out)
    comparison = compare(base, current)
    said = f"{_baseline_said(base)}: {describe(comparison)}; {describe_differences(comparison)}"
    verdicts = check_regression(comparison, opts.compare_fail)
    failed = [v.message for v in verdicts if v.status == "failed"]
    warned = [v.message for v in verdicts if v.status == "warned"]
    props = comparison_properties(comparison)
    if failed:
        return bad(f"regression: {'; '.join(failed)} [{said}]", props)
    if warned:
        return ok(f"{'; '.join(warned)} [{said}]", note=True, properties=props)
    return ok(said, properties=props)


def comparison_properties(comparison: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """JUnit properties of the baseline item: the baseline's id, the Dice difference, its interval, pairing;
    read_comparison takes `nvseg_comparison` back onto the run's record."""
    dice = comparison["formal_dice"]
    ci = "" if not dice["ci"] else f"{dice['ci'][0]:+.4f}..{dice['ci'][1]:+.4f}"
    diff = "" if dice["diff"] is None else f"{dice['diff']:+.4f}"
    return (("nvseg_baseline", str(comparison["baseline"])), ("nvseg_baseline_dice_diff", diff),
            ("nvseg_baseline_dice_ci", ci), ("nvseg_baseline_paired", str(dice["paired"]).lower()),
            ("nvseg_comparison", json.dumps(comparison)))


def read_comparison(props: dict[str, Any], record: RunRecord) -> None:
    """The ledger's side: the comparison, from the `baseline` item's properties, onto the run's record."""
    if "nvseg_comparison" in props:
        record.comparison = json.loads(props["nvseg_comparison"])


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


def finish(ledger: Ledger, opts: HarnessOptions, root: Path | None) -> None:
    """Save every judged run (--nvseg-autosave), and give the report each run's saved history."""
    if opts.autosave:
        ledger.saved_paths = save_runs(ledger, opts, root)
    if opts.report is not None and (opts.autosave or opts.compare):
        attach_history(ledger, opts)


def headline_rows(record: RunRecord) -> list[tuple[str, str]]:
    """The report headline's rows for the comparison with the saved baseline, when the item made one."""
    comparison = record.comparison
    if comparison is None:
        return []
    return [(f"vs baseline {comparison['baseline']}", describe(comparison)),
            ("baseline differences", describe_differences(comparison))]


def trend_figures(record: RunRecord) -> list[Figure]:
    """The report's trend plot of formal Dice over the saved runs of this name, when finish attached them."""
    if not record.history:
        return []
    return [("trend", "Formal Dice over saved runs", lambda: trend_plot(record.history))]


def baseline_lines(record: RunRecord) -> list[str]:
    """The terminal table's line for a run's comparison with its baseline."""
    comparison = record.comparison
    if comparison is None:
        return []
    return [f"  {record.name} vs baseline {comparison['baseline']}: {describe(comparison)}",
            f"  {record.name} vs baseline: {describe_differences(comparison)}"]


FEATURE = Feature("baseline", gates={
    "baseline": Gate("no regression against the saved baseline (opt-in)", check_baseline,
                     options=("--nvseg-compare", "--nvseg-compare-fail"), opt_in=True),
}, add_options=add_options, read_options=read_options, terminal_lines=baseline_lines, headline=headline_rows,
    figures=trend_figures, read_properties=read_comparison, finish=finish)
