"""Re-derive a cross-validation's pooled figures (OUT/cv.json) from each fold's own per-case CSVs.

Reads fold-K/eval_pretrained and fold-K/eval_finetuned val_mean_dice_raw.csv for every fold cv.json lists
(by this pack's layout, not by the paths cv.json records), refuses a case scored by two folds, pools the
cases and derives the paired figures with gain_check's code: the mean gain, the bootstrap interval with
the verifier's own rules, the counts, the exact Wilcoxon p, the confidence (too_few_cases below 6 cases); then
each fold's gain and their spread. cv.json must agree with all of it, and output.json's pooled
formal_gain_stats with cv.json. Each fold's scored folder follows cv.json's `cv_checkpoint`: eval_last (the final
epoch, which the scored cases did not choose) or eval_finetuned (the best epoch, chosen on them; packs written
before the choice existed). The optimism (pooled best minus last, paired per case) is re-derived from both
folders when every fold has them. Own code; nothing of the producer's.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from .findings import Finding, failed, passed, skipped
from .gain_check import CSV_NAME, TooMany, derive, disagreements, near, read_csv
from .pack import Pack

CV_FILE = "cv.json"
MAX_FOLDS = 20  # a pack cannot size the work: more folds are refused
SCORED = {"last": "eval_last", "best": "eval_finetuned", None: "eval_finetuned"}  # cv_checkpoint -> each fold's folder


def _read(pack: Pack) -> dict[str, Any] | str:
    path = pack.root / CV_FILE
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return f"{CV_FILE} is not readable JSON: {exc}"
    pack.note(path)
    return doc


def _fold_tables(pack: Pack, cv: dict[str, Any], scored: str = "eval_finetuned"
                 ) -> tuple[dict[int, tuple[dict, dict]], list[str]]:
    """fold -> (before, after) per case (after: the `scored` folder), and what is missing or scored twice."""
    tables, problems, seen = {}, [], {}
    for row in cv.get("runs") or []:
        fold = row.get("fold")
        if not isinstance(fold, int) or isinstance(fold, bool):  # a fold names a folder: fold-K, nothing else
            problems.append(f"cv.json names fold {fold!r}, not a fold number")
            continue
        root = pack.root / f"fold-{fold}"
        before = read_csv(pack, root / "eval_pretrained" / CSV_NAME)
        after = read_csv(pack, root / scored / CSV_NAME)
        if before is None or after is None:
            problems.append(f"fold-{fold} lacks eval_pretrained/{CSV_NAME} or {scored}/{CSV_NAME}")
            continue
        for name in before.keys() | after.keys():
            if name in seen:
                problems.append(f"{name} is scored by fold {seen[name]} and fold {fold}")
            seen[name] = fold
        tables[fold] = (before, after)
    return tables, problems


def _fold_gain(before: dict[str, float], after: dict[str, float]) -> float | None:
    if not before or not after:
        return None
    return float(np.mean(list(after.values())) - np.mean(list(before.values())))


def _fold_problems(cv: dict[str, Any], tables: dict[int, tuple[dict, dict]]) -> list[str]:
    problems = []
    gains = {}
    for row in cv.get("runs") or []:
        if row.get("fold") not in tables:
            continue
        before, after = tables[row["fold"]]
        gains[row["fold"]] = _fold_gain(before, after)
        if not near(gains[row["fold"]], row.get("formal_gain")):
            problems.append(f"fold {row['fold']}'s gain is {gains[row['fold']]}, cv.json claims {row.get('formal_gain')}")
        if sorted(before.keys() | after.keys()) != sorted(row.get("cases") or []):
            problems.append(f"fold {row['fold']} scored {sorted(before.keys() | after.keys())}, cv.json lists "
                            f"{row.get('cases')}")
    values = [g for g in gains.values() if g is not None]
    spread = cv.get("fold_gain") or {}
    if values and not (near(min(values), spread.get("min")) and near(max(values), spread.get("max"))
                       and near(float(np.mean(values)), spread.get("mean"))):
        problems.append(f"fold gains span {min(values):+.4f}..{max(values):+.4f} (mean {np.mean(values):+.4f}); cv.json "
                        f"claims {spread.get('min')}..{spread.get('max')} (mean {spread.get('mean')})")
    return problems


def _tied_to_output(pack: Pack, pooled: dict[str, Any]) -> list[str]:
    out = pack.output.get("output") or {}
    claimed = out.get("formal_gain_stats") or {}
    keys = ("mean_gain", "ci_low", "ci_high")
    off = [k for k in keys if not near(pooled.get(k), claimed.get(k))]
    if off or out.get("gain_confidence") != pooled.get("confidence"):
        return [f"output.json's formal_gain_stats ({', '.join(off) or 'gain_confidence'}) differ from cv.json's pooled figures"]
    return []


def _optimism_problems(pack: Pack, cv: dict[str, Any]) -> list[str]:
    """cv.json's optimism (best minus last per case) against both folders' CSVs, when it claims one."""
    claimed = (cv.get("selection") or {}).get("optimism")
    if not claimed:
        return []
    best, _ = _fold_tables(pack, cv, "eval_finetuned")
    last, missing = _fold_tables(pack, cv, "eval_last")
    if missing:
        return [f"optimism: {m}" for m in missing]
    try:
        numbers = derive({k: v for _, a in last.values() for k, v in a.items()},
                         {k: v for _, a in best.values() for k, v in a.items()})
    except TooMany as exc:
        return [str(exc)]
    return [f"optimism: {p}" for p in disagreements(numbers, claimed)]


def check_cv(pack: Pack) -> Finding:
    name = "cv_pooled"
    claimed_cv = (pack.output.get("output") or {}).get("cv")
    if not (pack.root / CV_FILE).is_file():
        if claimed_cv:
            return failed(name, f"output.json says this is a cross-validation, and the pack has no {CV_FILE}")
        return skipped(name, "not a cross-validation (no cv.json)")
    cv = _read(pack)
    if isinstance(cv, str):
        return failed(name, cv)
    if not isinstance(cv, dict) or len(cv.get("runs") or []) > MAX_FOLDS:
        return failed(name, f"{CV_FILE} is not an object with at most {MAX_FOLDS} runs")
    if cv.get("cv_checkpoint") not in SCORED:
        return failed(name, f"cv.json's cv_checkpoint is {cv.get('cv_checkpoint')!r}, not last or best")
    tables, problems = _fold_tables(pack, cv, SCORED[cv.get("cv_checkpoint")])
    before = {k: v for b, _ in tables.values() for k, v in b.items()}
    after = {k: v for _, a in tables.values() for k, v in a.items()}
    pooled = cv.get("pooled") or {}
    try:
        numbers = derive(before, after)
    except TooMany as exc:
        return failed(name, str(exc))
    problems += [f"pooled: {p}" for p in disagreements(numbers, pooled)]
    if "confidence" in numbers and cv.get("gain_confidence") not in (numbers["confidence"], None):
        problems.append(f"cv.json's gain_confidence is {cv.get('gain_confidence')}, the pooled interval over "
                        f"{numbers['n_cases']} cases gives {numbers['confidence']}")
    problems += _fold_problems(cv, tables)
    problems += _tied_to_output(pack, pooled)
    problems += _optimism_problems(pack, cv)
    numbers["folds"] = sorted(tables)
    if problems:
        return failed(name, "; ".join(problems), **numbers)
    interval = f", interval {numbers['ci_low']:+.4f}..{numbers['ci_high']:+.4f}" if "ci_low" in numbers else ""
    return passed(name, f"re-derived from {len(tables)} folds' per-case CSVs: {numbers['n_cases']} cases{interval}, "
                        f"{numbers.get('confidence')}", **numbers)
