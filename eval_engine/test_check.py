"""The test split's claims (output.test, output.verdict_split), re-derived like the validation ones.

The labelled testing cases come from the trusted datalist's `testing` list (the caller's, or the pack's
when the caller gives none, then said on the finding), never from the datalist the run staged for its test
phases. Dice is recomputed from eval_test_pretrained's and eval_test_finetuned's saved predictions with
recompute.py's code, the paired statistics from their per-case CSVs with gain_check.py's, and which split
the verdict rests on by this verifier's own copy of the rule: the test split when it pairs at least
MIN_VERDICT_CASES of the same cases, else the validation cases; a cross-validation's (output.cv) is always
its pooled verdict, `cv`. Own code; nothing of the producer's.
"""
from __future__ import annotations

import json
from typing import Any

from .findings import Finding, failed, passed, skipped
from .gain_check import CSV_NAME, MIN_VERDICT_CASES, TooMany, derive, disagreements, read_per_case
from .inputs import Inputs
from .pack import Pack
from .recompute import recompute_formal

PHASES = {"eval_test_pretrained": "formal_pretrained_val_dice", "eval_test_finetuned": "formal_finetuned_val_dice"}


def testing_entries(inputs: Inputs) -> list[dict[str, str]] | str:
    """The datalist's labelled testing entries, or why they cannot be had; paths must stay inside the dataset."""
    if inputs.datalist is None or not inputs.datalist.is_file():
        return inputs.labels_said(f"the datalist {inputs.datalist} is not reachable")
    try:
        listed = json.loads(inputs.datalist.read_text()).get("testing") or []
        entries = [{"image": str(e["image"]), "label": str(e["label"])} for e in listed if "label" in e]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return inputs.labels_said(f"the datalist {inputs.datalist} has no usable testing list ({exc})")
    wild = [e["label"] for e in entries if e["label"].startswith("/") or ".." in e["label"].split("/")]
    return f"the datalist's testing list sends label reads outside its dataset: {wild[:3]}" if wild else entries


def expected_split(numbers: dict[str, Any] | None) -> str:
    """The verdict's split by the rule: test when enough of the same cases were scored before and after."""
    enough = bool(numbers) and numbers["same_cases"] and numbers["n_cases"] >= MIN_VERDICT_CASES
    return "test" if enough else "validation"


def check_formal(pack: Pack, inputs: Inputs) -> list[Finding]:
    """Dice of both test phases recomputed from their predictions against output.test and the CSVs."""
    test = (pack.output.get("output") or {}).get("test")
    if not test:
        return []
    entries = testing_entries(inputs)
    return [f for phase, field in PHASES.items() for f in recompute_formal(pack, phase, field, inputs, entries, test)]


def check_test_split(pack: Pack) -> Finding:
    """output.test's paired statistics from the test phases' CSVs, and output.verdict_split by the rule."""
    name = "test_split"
    out = pack.output.get("output") or {}
    test, claimed_split = out.get("test"), out.get("verdict_split")
    if not test:
        if claimed_split == "test":
            return failed(name, "verdict_split says test, and output.json carries no test block")
        return skipped(name, "no labelled testing cases in this run")
    before, after = (read_per_case(pack, phase) for phase in PHASES)
    if before is None or after is None:
        return failed(name, f"the pack lacks eval_test_pretrained/{CSV_NAME} or eval_test_finetuned/{CSV_NAME}")
    try:
        numbers = derive(before, after)
    except TooMany as exc:
        return failed(name, str(exc))
    problems = [f"test: {p}" for p in disagreements(numbers, test.get("formal_gain_stats") or {})]
    if "confidence" in numbers and test.get("gain_confidence") != numbers["confidence"]:
        problems.append(f"test gain_confidence is {test.get('gain_confidence')}, the interval gives {numbers['confidence']}")
    want = "cv" if out.get("cv") else expected_split(numbers)  # a CV's verdict is its pooled one, whatever the tests
    if claimed_split != want:
        problems.append(f"verdict_split is {claimed_split!r}; {numbers['n_cases']} paired testing cases give {want!r}")
    numbers["verdict_split"] = want
    if problems:
        return failed(name, "; ".join(problems), **numbers)
    return passed(name, f"re-derived from the test phases' CSVs: {numbers['n_cases']} cases, verdict on {want}", **numbers)
