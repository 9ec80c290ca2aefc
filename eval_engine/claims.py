"""Claims re-derived from the recorded numbers and the logs: schema, training trajectory, decision,
dataset audit, reference ranges, environment pins."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from .findings import Finding, failed, passed, skipped, unverified, warned
from .pack import Pack
from .provenance import derived_pinned

# the verifier's own copy of the output schema (a test holds it equal to nvseg_bench/schema/output.schema.json):
# installed as package data, so the verifier runs without the repository and never reads the audited package
SCHEMA = Path(__file__).with_name("output.schema.json")
RANGES = Path(__file__).with_name("reference_ranges.json")
VAL_LINE = re.compile(r"Epoch\[(\d+)\] Metrics -- .*?val_mean_dice: (\S+)")
LOSS_LINE = re.compile(r"Epoch: (\d+)/(\d+), Iter: \d+/\d+ -- train_loss: (\S+)")
OOM_LINE = re.compile(r"CUDA out of memory|OutOfMemoryError")
TRACE_TOLERANCE = 1e-4
GAIN = 1e-3  # the decision rule's margin


def check_schema(pack: Pack, schema_path: Path = SCHEMA) -> Finding:
    if not schema_path.is_file():
        return warned("schema", f"the project's schema {schema_path} is not here; output.json was not validated")
    import jsonschema

    pack.note(schema_path)
    validator = jsonschema.Draft202012Validator(json.loads(schema_path.read_text()))
    errors = [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in validator.iter_errors(pack.output)]
    if errors:
        return failed("schema", f"{len(errors)} schema violations, first: {errors[0]}", errors=errors[:20])
    return passed("schema", f"output.json validates against {schema_path.name}")


def check_trajectory(pack: Pack) -> Finding:
    out, plan = pack.output.get("output") or {}, pack.output.get("plan") or {}
    runtime = pack.output.get("runtime") or {}
    log = pack.locate((runtime.get("phase_logs") or {}).get("finetune"))
    if log is None or not log.is_file():
        return skipped("trajectory", "no finetune log in the pack")
    earlier = [pack.locate(p) for p in ((runtime.get("resumed") or {}).get("earlier_logs") or [])]
    if any(p is None or not p.is_file() for p in earlier):
        return failed("trajectory", "the run was resumed, and the pack lacks a log of the finetune before a stop")
    trace: dict[int, float] = {}
    loss_by_epoch: dict[int, list[float]] = {}
    epochs_logged = None
    for part in [*earlier, log]:  # a resumed run: per epoch, the newest log that has it
        pack.note(part)
        text = part.read_text(errors="replace")
        trace |= {int(m.group(1)): float(m.group(2)) for m in VAL_LINE.finditer(text)}
        found: dict[int, list[float]] = {}
        for m in LOSS_LINE.finditer(text):
            found.setdefault(int(m.group(1)), []).append(float(m.group(3)))
            epochs_logged = int(m.group(2))
        loss_by_epoch |= found
    logged = [trace[k] for k in sorted(trace)]
    losses = [loss for epoch in sorted(loss_by_epoch) for loss in loss_by_epoch[epoch]]
    claimed = out.get("val_dice_per_epoch") or []
    problems = []
    if len(claimed) != len(logged) or any(abs(a - b) > TRACE_TOLERANCE for a, b in zip(claimed, logged)):
        problems.append(f"val_dice_per_epoch {claimed} is not the log's {logged}")
    if logged:
        best = max(logged)
        if out.get("training_best_val_dice") is None or abs(out["training_best_val_dice"] - best) > TRACE_TOLERANCE:
            problems.append(f"training_best_val_dice {out.get('training_best_val_dice')} is not the log's best {best}")
        if out.get("training_best_epoch_index") != logged.index(best):
            problems.append(f"training_best_epoch_index {out.get('training_best_epoch_index')} is not {logged.index(best)}")
        if out.get("training_start_val_dice") is None or abs(out["training_start_val_dice"] - logged[0]) > TRACE_TOLERANCE:
            problems.append(f"training_start_val_dice {out.get('training_start_val_dice')} is not the log's first {logged[0]}")
    finite = bool(losses) and all(math.isfinite(x) for x in losses)
    if out.get("train_loss_finite") != finite:
        problems.append(f"train_loss_finite {out.get('train_loss_finite')} but the log's losses are finite={finite}")
    if OOM_LINE.search(text) and not out.get("oom"):
        problems.append("the log reports out of memory, output.json does not")
    if epochs_logged is not None and plan.get("epochs") != epochs_logged:
        problems.append(f"the plan says {plan.get('epochs')} epochs, the log ran {epochs_logged}")
    numbers = {"logged_trace": logged, "claimed_trace": claimed, "iterations": len(losses), "epochs_logged": epochs_logged}
    if problems:
        return failed("trajectory", "; ".join(problems), **numbers)
    return passed("trajectory", f"{len(logged)} validation scores and {len(losses)} losses agree with the log", **numbers)


def expected_decision(out: dict[str, Any]) -> dict[str, Any]:
    """The keep rule, written again here on purpose: the verifier never imports the code it audits, so a
    fault in nvseg_bench/evidence/decision.py cannot also pass this check. In a cross-validation's top-level
    pack (output.cv) the pooled figures decide and the kept checkpoint must also be clear of noise; gain_stats
    re-derives that confidence."""
    split = (out.get("test") or {}) if out.get("verdict_split") == "test" else out  # test_check.py checks the split
    pre, post = split.get("formal_pretrained_val_dice"), split.get("formal_finetuned_val_dice")
    start, best = out.get("training_start_val_dice"), out.get("training_best_val_dice")
    changed = out.get("finetuned_ckpt_matches_pretrained_weights") is False
    if out.get("formal_eval_enabled"):
        gain = None if pre is None or post is None else post - pre
        improved, regressed = gain is not None and gain > GAIN, gain is not None and gain < -GAIN
    else:
        gain = None if start is None or best is None else best - start
        improved, regressed = gain is not None and gain > GAIN, False
    keep = improved and changed and bool(out.get("finetuned_ckpt_exists"))
    if out.get("cv"):  # a cross-validation's pack: a fold checkpoint only on a pooled gain clear of noise
        keep = keep and out.get("gain_confidence") == "clear"
    return {"improved": improved, "regressed": regressed,
            "recommended_ckpt": out.get("finetuned_ckpt") if keep else out.get("pretrained_ckpt")}


def check_decision(pack: Pack, basis_checked: bool) -> Finding:
    """The keep rule applied to the pack's figures; `basis_checked`: the figures it rests on (formal Dice
    of both phases, else the training trace) were re-derived, without which the decision is unverified."""
    out = pack.output.get("output") or {}
    want = expected_decision(out)
    if not basis_checked:
        basis = "formal Dice of both phases" if out.get("formal_eval_enabled") else "the training trace"
        return unverified("decision", f"the keep decision rests on {basis}, which the verifier could not re-derive",
                          expected=want)
    wrong = {k: (out.get(k), v) for k, v in want.items() if out.get(k) != v}
    if wrong:
        detail = "; ".join(f"{k} is {got!r}, the rule gives {should!r}" for k, (got, should) in wrong.items())
        return failed("decision", detail, expected=want)
    return passed("decision", f"recommended_ckpt, improved and regressed follow the rule ({'finetuned' if want['recommended_ckpt'] == out.get('finetuned_ckpt') else 'pretrained'} kept)")


def check_dataset_audit(pack: Pack) -> Finding:
    audit = ((pack.output.get("input") or {}).get("dataset_audit") or {})
    summary = audit.get("summary") or {}
    if not summary:
        return failed("dataset_audit", "output.json carries no dataset audit")
    problems, notes = [], []
    if summary.get("mapped_values_missing"):
        problems.append(f"mapped values {summary['mapped_values_missing']} occur in no training label")
    if summary.get("mapped_values_missing_in_validation"):
        problems.append(f"mapped values {summary['mapped_values_missing_in_validation']} occur in no validation label")
    if not summary.get("n_val"):
        problems.append("no validation cases")
    if summary.get("looks_like_ct") is False:
        notes.append(f"intensities do not look like CT: {summary.get('looks_like_ct_reason')}")
    numbers = {"pairs": audit.get("n_pairs"), "n_train": summary.get("n_train"), "n_val": summary.get("n_val"),
               "orientations": summary.get("orientation_codes"), "hu_range": summary.get("hu_range")}
    if problems:
        return failed("dataset_audit", "; ".join(problems), **numbers)
    if notes:
        return warned("dataset_audit", "; ".join(notes), **numbers)
    return passed("dataset_audit", f"{audit.get('n_pairs')} pairs, mapped labels present, CT-like intensities", **numbers)


def _reference_key(pack: Pack) -> str | None:
    preset = (pack.output.get("plan") or {}).get("preset")
    if preset == "sanity":
        return "task06"
    dataset = str((pack.output.get("input") or {}).get("dataset_dir", ""))
    bundle = ((pack.output.get("input") or {}).get("bundle") or {}).get("source")
    if (preset == "smoke" and Path(dataset).name == "spleen_micro" and bundle == "builtin"
            and (pack.output.get("model") or "").startswith("micro VISTA3D")):
        return "spleen_micro"  # measured on this project's bundle/: another bundle's recipe is not held to it
    return None


def check_references(pack: Pack) -> Finding:
    key = _reference_key(pack)
    if key is None:
        return skipped("reference_ranges", "no reference ranges for this preset and dataset")
    bundle = (pack.output.get("input") or {}).get("bundle") or {}
    pinned = derived_pinned(bundle)  # re-derived where the bundle is reachable, else the claim
    if key == "task06" and not (bundle.get("matches_pinned_upstream") if pinned is None else pinned):
        return skipped("reference_ranges", "task06: not comparable: recipe differs (the run did not use the pinned "
                       f"upstream bundle unchanged; its bundle: {bundle.get('source')} {bundle.get('path')})")
    ranges = json.loads(RANGES.read_text())[key]
    out = dict(pack.output.get("output") or {})
    if out.get("training_start_val_dice") is not None and out.get("training_best_val_dice") is not None:
        out["training_improvement"] = out["training_best_val_dice"] - out["training_start_val_dice"]
    missed = []
    for bound, compare in (("min", lambda v, b: v >= b), ("max", lambda v, b: v <= b)):
        for field, limit in ranges.get(bound, {}).items():
            value = out.get(field)
            if value is None or not compare(value, limit):
                missed.append(f"{field} {value} vs {bound} {limit}")
    if missed:
        return failed("reference_ranges", f"{key}: " + "; ".join(missed), reference=key)
    return passed("reference_ranges", f"{key}: every number inside its reference range", reference=key)


PINS = {"monai": lambda v: v == "1.4.0", "numpy": lambda v: int(v.split(".")[0]) < 2}


def check_environment(pack: Pack) -> Finding:
    packages = ((pack.output.get("environment") or {}).get("packages") or {})
    off = []
    for name, ok in PINS.items():
        version = packages.get(name)
        if not version:
            off.append(f"{name} not recorded")
        elif not ok(version):
            off.append(f"{name}=={version}")
    if off:
        return warned("environment", "pins not met: " + ", ".join(off) + " (expected monai==1.4.0, numpy<2)",
                      packages=packages)
    return passed("environment", f"monai {packages['monai']}, numpy {packages['numpy']}, torch {packages.get('torch')}")
