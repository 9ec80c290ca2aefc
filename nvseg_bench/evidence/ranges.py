"""Reference ranges: the numbers a preset's run is held to, read only from reference files.

Each file in nvseg_bench/data holds named cards with `min`/`max` bounds per output.json field and
their provenance: smoke_reference.json (spleen_micro) is a measured seed sweep, written by
`python -m nvseg_bench.references`; task06_reference.json holds the Task06 recipe's published
single-GPU run (docs/task06-and-results.md; Python 3.10.16, MONAI 1.4.0, Torch 2.7.0+cu126: formal
pretrained 0.6697, formal finetuned 0.6836, training-time best 0.6905), marked as one published
run, not a distribution.
"""
from __future__ import annotations

import json
from typing import Any

from nvseg_bench import paths

DATA = paths.DATA
REFERENCE_FILES = {"spleen_micro": DATA / "smoke_reference.json", "task06": DATA / "task06_reference.json"}


def load_card(name: str) -> dict[str, Any]:
    """The named reference card (about, provenance, measured, min, max)."""
    return json.loads(REFERENCE_FILES[name].read_text())[name]


def bounds(name: str) -> tuple[dict[str, float], dict[str, float], str]:
    """(min, max, where from) for a reference card."""
    card = load_card(name)
    kind = (card.get("provenance") or {}).get("kind", "unrecorded")
    return card.get("min", {}), card.get("max", {}), f"{name} ranges ({REFERENCE_FILES[name].name}, {kind})"


# the output.json field each Task06 gate bounds from below, in the order the checks are reported
TASK06_FIELD_MIN: dict[str, float] = load_card("task06")["min"]
# the same minimums under the names output.json's sanity_reference_checks.thresholds has always used
TASK06_GATES: dict[str, float] = {
    "formal_pretrained_min": TASK06_FIELD_MIN["formal_pretrained_val_dice"],
    "formal_finetuned_min": TASK06_FIELD_MIN["formal_finetuned_val_dice"],
    "formal_improvement_min": TASK06_FIELD_MIN["formal_improvement_over_pretrained"],
    "training_start_min": TASK06_FIELD_MIN["training_start_val_dice"],
    "training_best_min": TASK06_FIELD_MIN["training_best_val_dice"],
    "training_improvement_min": TASK06_FIELD_MIN["training_improvement"],
}


def measured(out: dict[str, Any], name: str) -> float | None:
    """A checked value from output.json's `output`; `training_improvement` is best minus start."""
    if name == "training_improvement":
        start, best = out.get("training_start_val_dice"), out.get("training_best_val_dice")
        return None if start is None or best is None else best - start
    return out.get(name)


def _check(name: str, value: float | None, bound: float) -> dict[str, Any]:
    return {"check": name, "value": value, "min": bound, "passed": value is not None and value >= bound}


def task06_checks(out: dict[str, Any], return_code: int) -> dict[str, Any]:
    checks = [_check(name, measured(out, name), bound) for name, bound in TASK06_FIELD_MIN.items()]
    checks += [
        {"check": "best_checkpoint_changed", "value": out.get("finetuned_ckpt_matches_pretrained_weights") is False,
         "passed": out.get("finetuned_ckpt_matches_pretrained_weights") is False},
        {"check": "return_code", "value": return_code, "passed": return_code == 0},
    ]
    failed = [c["check"] for c in checks if not c["passed"]]
    return {"thresholds": TASK06_GATES, "checks": checks, "failed_checks": failed, "passed": not failed}


NOT_COMPARABLE = "not comparable: recipe differs"


def upstream_state(bundle: dict[str, Any]) -> str:
    """input.bundle's upstream check state; an older output.json without one reads from matches_pinned_upstream."""
    check = bundle.get("upstream_check")
    if isinstance(check, dict) and check.get("state"):
        return str(check["state"])
    return "verified" if bundle.get("matches_pinned_upstream") else "differs" if bundle.get("source") == "hub" \
        else "not_hub"


def comparable(bundle: dict[str, Any] | None) -> tuple[bool, str]:
    """Whether a run's numbers may be held to the Task06 reference: only a run of the recipe that produced it,
    the pinned upstream bundle, verified against the hub's file list or (without one) self-consistent, never
    one that differs (output.json input.bundle)."""
    if not bundle:
        return False, f"{NOT_COMPARABLE} (output.json records no bundle provenance)"
    state = upstream_state(bundle)
    if state == "verified":
        return True, "the pinned upstream bundle, verified against the hub's file list"
    if state == "self_consistent" and bundle.get("source") == "hub":
        return True, ("the pinned upstream bundle, self-consistent only (warning: no hub file list was kept, so an "
                      "edited file relinked under a new name, or an added file, would not show; run "
                      "`nvseg-finetune fetch-bundle` once with network access)")
    check = bundle.get("upstream_check") if isinstance(bundle.get("upstream_check"), dict) else {}
    differing = bundle.get("differing_files") or [f"{f} ({kind})" for kind in ("missing", "added", "different")
                                                  for f in check.get(kind) or []] or bundle.get("altered_files") or []
    named = f": {', '.join(differing[:8])}" + (f" and {len(differing) - 8} more" if len(differing) > 8 else "") \
        if differing else ""
    return False, f"{NOT_COMPARABLE} ({bundle.get('source')} bundle {bundle.get('path')}{named})"


def task06_not_comparable(reason: str) -> dict[str, Any]:
    """output.json's sanity_reference_checks when the recipe is not the reference's: no verdict."""
    return {"thresholds": TASK06_GATES, "checks": [], "failed_checks": [], "passed": None, "comparable": False,
            "reason": reason}
