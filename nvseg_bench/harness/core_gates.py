"""The core gates: the claims every finished run must support, each checked from its own evidence,
with no option of their own. Two features: what the run found (schema, phases, memory, loss,
checkpoint, decision, formal fields, reference ranges) and how it ran (telemetry, inputs untouched);
gates.py puts the option-driven features between them.

A gate takes a RunEvidence and returns a Verdict. A failing verdict says which number missed
which bound, so a CI log is enough to act on. Gates read output.json and the files it names;
they never re-run anything.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from nvseg_bench.evidence.decision import MIN_GAIN, decide, decide_cv
from nvseg_bench.output.write import both_schema_errors
from nvseg_bench.evidence.ranges import bounds, comparable, measured, upstream_state
from nvseg_bench.harness.feature import Check, Feature, Gate, Verdict, bad, ok, skip
from nvseg_bench.harness.ledger import RunRecord
from nvseg_bench.harness.runs import RunEvidence


def _out(run: RunEvidence) -> dict[str, Any]:
    return (run.doc or {}).get("output") or {}


def schema_valid(run: RunEvidence) -> Verdict:
    errors = both_schema_errors(run.doc or {})
    if errors:
        return bad(f"output.json breaks its schema or the peer skill's in {len(errors)} places; first: {errors[0]}")
    return ok(f"output.json validates against ours and the peer skill's schema (status {(run.doc or {}).get('status')!r})")


def phases_returned_0(run: RunEvidence) -> Verdict:
    doc = run.doc or {}
    codes = doc.get("invocation", {}).get("phase_return_codes", {})
    failures = doc.get("runtime", {}).get("phase_failures", {})
    wrong = {name: code for name, code in codes.items() if code != 0}
    if not codes:
        return bad(f"no phase ran (CLI exit {run.returncode}); see {run.out / 'output.json'}")
    if wrong:
        said = "; ".join(f"{name} returned {code}" + (f" ({failures[name]})" if name in failures else "")
                         for name, code in wrong.items())
        return bad(f"{said}; logs under {run.out / 'logs'}")
    return ok(", ".join(f"{name} 0" for name in codes))


def no_oom(run: RunEvidence) -> Verdict:
    doc = run.doc or {}
    if doc.get("runtime", {}).get("oom") or _out(run).get("oom"):
        return bad("a phase ran out of memory (runtime.oom is true); lower --patch-size or --cache-rate")
    return ok("no phase reported out of memory")


def loss_finite(run: RunEvidence) -> Verdict:
    out = _out(run)
    first, last = out.get("train_loss_first"), out.get("train_loss_last")
    if out.get("train_loss_finite") is not True:
        return bad(f"train loss is not finite (first {first}, last {last}); lower --learning-rate")
    return ok(f"train loss {first} -> {last}")


def finetuned_ckpt_exists(run: RunEvidence) -> Verdict:
    path = run.locate(_out(run).get("finetuned_ckpt"))
    if path is None or not path.is_file():
        return bad(f"no finetuned checkpoint at {path} (output.finetuned_ckpt_exists is "
                   f"{_out(run).get('finetuned_ckpt_exists')})")
    return ok(f"{path.name}, {path.stat().st_size / 2**20:.1f} MiB")


@dataclass
class Comparison:
    """The finetuned-vs-pretrained tensor comparison, from the flat or the peer's `best`-nested shape."""

    found: bool
    identical: bool | None
    changed: int | None
    total: int | None
    max_abs_diff: float | None


def comparison(out: dict[str, Any]) -> Comparison:
    raw = out.get("checkpoint_comparisons_to_pretrained") or {}
    raw = raw if isinstance(raw, dict) else {}
    places = [raw, raw["best"]] if isinstance(raw.get("best"), dict) else [raw]

    def pick(*names: str) -> Any:
        return next((p[n] for p in places for n in names if p.get(n) is not None), None)

    identical = pick("identical", "weights_identical")
    if identical is None:
        identical = out.get("finetuned_ckpt_matches_pretrained_weights")
    changed = pick("n_changed", "differing_tensors")
    changed = len(changed) if isinstance(changed, (list, dict)) else changed
    return Comparison(bool(raw), identical, changed, pick("n_tensors", "tensor_count"), pick("max_abs_diff"))


def tensors_changed(run: RunEvidence) -> Verdict:
    out = _out(run)
    cmp = comparison(out)
    if cmp.identical is False and cmp.changed:
        spread = "" if cmp.max_abs_diff is None else f" (max |diff| {cmp.max_abs_diff:.3g})"
        return ok(f"{cmp.changed} of {cmp.total} tensors changed{spread}")
    reason = str(out.get("decision_reason", ""))
    if cmp.identical and "epoch-0" in reason and not out.get("recommended_is_finetuned"):
        return ok(f"epoch-0 trap, reported as such: no epoch beat the epoch-0 score, so the best checkpoint "
                  f"holds the pretrained weights and the pretrained one is recommended ({reason})", note=True)
    if not cmp.found:
        return bad("output.json has no checkpoint comparison (checkpoint_comparisons_to_pretrained)")
    return bad(f"the finetuned checkpoint equals the pretrained one ({cmp.changed} of {cmp.total} tensors changed) "
               f"and the run does not report the epoch-0 trap (decision: {reason!r})")


def decision_rule(run: RunEvidence) -> Verdict:
    """The keep rule (evidence/decision.py, the one copy in this package) applied to the run's own recorded
    numbers must pick the checkpoint output.json recommends."""
    out = _out(run)
    if out.get("cv"):
        return cv_decision(out)
    split = (out.get("test") or {}) if out.get("verdict_split") == "test" else out  # the cases the verdict rests on
    applied = decide(formal_enabled=bool(out.get("formal_eval_enabled")), formal_pre=split.get("formal_pretrained_val_dice"),
                     formal_post=split.get("formal_finetuned_val_dice"), start=out.get("training_start_val_dice"),
                     best=out.get("training_best_val_dice"), tensors_changed=comparison(out).identical is False,
                     finetuned_exists=bool(out.get("finetuned_ckpt_exists")),
                     finetuned_ckpt=out.get("finetuned_ckpt"), pretrained_ckpt=out.get("pretrained_ckpt"))
    expected, keep = applied["recommended_ckpt"], applied["recommended_is_finetuned"]
    formal = bool(out.get("formal_eval_enabled"))
    gain = applied["formal_improvement_over_pretrained" if formal else "improvement_over_baseline"]
    gain_text = "none" if gain is None else f"{gain:+.4f}"
    basis = "formal" if formal else "training"
    if out.get("recommended_ckpt") != expected:
        return bad(f"recommended_ckpt is {out.get('recommended_ckpt')}, but the rule ({basis} Dice gain {gain_text} "
                   f"> {MIN_GAIN}, tensors changed, file exists) picks {expected}")
    return ok(f"{basis} Dice gain {gain_text}: keep the {'finetuned' if keep else 'pretrained'} checkpoint")


def cv_decision(out: dict[str, Any]) -> Verdict:
    """A cross-validation's top-level output.json: decision.CV_RULE on its pooled figures."""
    pre, post = out.get("formal_pretrained_val_dice"), out.get("formal_finetuned_val_dice")
    gain = None if pre is None or post is None else post - pre
    applied = decide_cv(confidence=out.get("gain_confidence"), pooled_gain=gain, fold=out["cv"].get("representative_fold"),
                        fold_ckpt=out.get("finetuned_ckpt"), pretrained_ckpt=out.get("pretrained_ckpt"),
                        fold_changed=comparison(out).identical is False and bool(out.get("finetuned_ckpt_exists")))
    if out.get("recommended_ckpt") != applied["recommended_ckpt"]:
        return bad(f"recommended_ckpt is {out.get('recommended_ckpt')}, but the cross-validation rule (pooled gain "
                   f"{out.get('gain_confidence')}, median fold's tensors changed) picks {applied['recommended_ckpt']}")
    return ok(f"pooled gain {out.get('gain_confidence')}: {applied['decision_reason']}")


def formal_fields(run: RunEvidence) -> Verdict:
    out = _out(run)
    if not out.get("formal_eval_enabled"):
        return skip("formal evaluation was off for this run (--skip-formal-eval)")
    names = ("formal_pretrained_val_dice", "formal_finetuned_val_dice", "formal_improvement_over_pretrained")
    missing = [n for n in names if not isinstance(out.get(n), (int, float)) or not math.isfinite(out[n])]
    n_val = (run.doc or {}).get("input", {}).get("n_val_cases")
    for side in ("formal_pretrained_per_case", "formal_finetuned_per_case"):
        if len(out.get(side) or {}) != n_val:
            missing.append(f"{side} ({len(out.get(side) or {})} cases, {n_val} validation cases)")
    if missing:
        return bad("formal eval ran but output.json lacks " + ", ".join(missing))
    return ok(f"formal Dice {out[names[0]]:.4f} -> {out[names[1]]:.4f} over {n_val} cases")


def reference_bounds(reference: str | None) -> tuple[dict[str, float], dict[str, float], str] | None:
    """(min, max, source) for a run's reference, read from its reference file, or None when it has none."""
    return bounds(reference) if reference else None


def reference_ranges(run: RunEvidence) -> Verdict:
    bounds = reference_bounds(run.reference)
    if bounds is None:
        return skip("no reference range for a user dataset; the other gates still hold it to account")
    if _out(run).get("cv"):
        return skip("the reference ranges are of single fold-0 runs; a cross-validation's pooled figures over every "
                    "case are not held to them")
    bundle = ((run.doc or {}).get("input") or {}).get("bundle")
    caveat = ""
    if run.reference == "task06":  # published with NVIDIA's recipe: another recipe's numbers are not held to it
        fair, why = comparable(bundle)
        if not fair:
            return skip(why)
        caveat = f"; {why}" if upstream_state(bundle or {}) != "verified" else ""
    elif (bundle or {}).get("source") != "builtin":  # the smoke ranges were measured on this project's bundle/
        return skip(f"the smoke ranges were measured with this project's bundle/; this run used the "
                    f"{(bundle or {}).get('source')} bundle {(bundle or {}).get('path')}")
    low, high, source = bounds
    out, misses, seen = _out(run), [], []
    for name in sorted(low.keys() | high.keys()):
        value = measured(out, name)
        if value is None:
            misses.append(f"{name} is missing")
            continue
        seen.append(f"{name} {value:.4f}")
        if name in low and value < low[name]:
            misses.append(f"{name} {value:.4f} < {low[name]} (min)")
        if name in high and value > high[name]:
            misses.append(f"{name} {value:.4f} > {high[name]} (max)")
    if misses:
        return bad("; ".join(misses) + f" [{source}]")
    return ok(", ".join(seen) + f" inside {source}{caveat}", note=bool(caveat))


def telemetry(run: RunEvidence) -> Verdict:
    runtime = (run.doc or {}).get("runtime", {})
    phases = list((run.doc or {}).get("invocation", {}).get("phase_return_codes", {}))
    seconds = runtime.get("phase_seconds", {})
    memory = runtime.get("phase_peak_gpu_mb", {}) if run.doc and (run.doc.get("environment") or {}).get("cuda_available") \
        else runtime.get("phase_peak_rss_mb", {})
    lacking = [f"seconds of {p}" for p in phases if not (seconds.get(p) or 0) > 0]
    lacking += [f"peak memory of {p}" for p in phases if not (memory.get(p) or 0) > 0]
    if not phases or lacking or not (runtime.get("wall_seconds") or 0) > 0:
        return bad("runtime telemetry lacks " + (", ".join(lacking) or "phases and wall_seconds"))
    kind = "GPU" if memory is runtime.get("phase_peak_gpu_mb") else "RSS"
    return ok(", ".join(f"{p} {seconds[p]:.1f} s / {memory[p]:.0f} MiB {kind}" for p in phases))


def inputs_untouched(run: RunEvidence) -> Verdict:
    if run.inputs_unchanged is None:
        return skip("not recorded: this pack was judged as found (--nvseg-trusted-only), not run by this session's harness")
    if not run.inputs_unchanged:
        return bad("a file under the bundle, dataset or checkpoint inputs was written while the run ran; "
                   "a run must only write its output dir")
    return ok("no file under the bundle, dataset or checkpoint inputs was written during the run")


def on_run(check: Callable[[RunEvidence], Verdict]) -> Check:
    """A core gate's check: the run alone, no option."""
    return lambda run, _opts: check(run)


def schema_problem_lines(record: RunRecord) -> list[str]:
    """Under the terminal table: where output.json, once it holds `gates`, breaks the schema."""
    return [f"  {record.name}: output.json with gates breaks the schema: {problem}"
            for problem in record.schema_problems[:3]]


OUTCOME = Feature("outcome", gates={
    "schema": Gate("output.json is valid under our schema and the peer skill's", on_run(schema_valid)),
    "phases": Gate("every phase returned 0", on_run(phases_returned_0)),
    "no_oom": Gate("no out-of-memory", on_run(no_oom)),
    "loss_finite": Gate("train loss finite", on_run(loss_finite)),
    "ckpt_exists": Gate("finetuned checkpoint exists", on_run(finetuned_ckpt_exists)),
    "ckpt_changed": Gate("tensors changed (or epoch-0 trap reported)", on_run(tensors_changed)),
    "decision": Gate("recommended checkpoint follows the rule", on_run(decision_rule)),
    "formal_fields": Gate("formal Dice fields present", on_run(formal_fields)),
    "reference": Gate("Dice inside reference ranges", on_run(reference_ranges)),
}, terminal_lines=schema_problem_lines)
RUNTIME = Feature("runtime", gates={
    "telemetry": Gate("runtime telemetry present", on_run(telemetry)),
    "inputs_untouched": Gate("inputs untouched", on_run(inputs_untouched)),
})
