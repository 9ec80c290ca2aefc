"""The output.json document, assembled from the frozen values of the steps before it: the prepared run,
what the phases did, the evidence with its decision, and the run status (status, exit code, sanity
checks). It decides nothing itself. Every field docs/design.md lists under output.json, headline first. Fields the peer skill shares keep the peer's shape (peer.py); where ours differs it
is kept under another key: `input.n_train_fold_cases`, `input.label_mapping_resolution_text`,
`invocation.command_prefix_argv`, `invocation.config_stack_paths` / `eval_config_stack_paths`,
`invocation.override_path`, and `runtime.phase_peak_gpu_mb` (null where nothing was measured,
while the peer's figures say 0).
"""
from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Any

from nvseg_bench.inputs.family import CT, MODELS
from nvseg_bench.model import bundle_source
from nvseg_bench.evidence import forgetting, gain_stats, per_class
from nvseg_bench.output import peer
from nvseg_bench.stage import preprocess_cache, resume
from nvseg_bench.evidence.collect import Evidence
from nvseg_bench.evidence.decision import RunStatus
from nvseg_bench.phases.loop import PhaseRun
from nvseg_bench.output.write import skeleton
from nvseg_bench.phases.runner import PhaseResult
from nvseg_bench.planning.plan import LARGEST_PATCH, PATCH_LADDER
from nvseg_bench.prepared import Prepared


def _input_block(p: Prepared, bundle: dict[str, Any] | None) -> dict[str, Any]:
    n_val = sum(1 for e in p.entries if int(e.get("fold", -1)) == 0)
    pairs = p.mapping.pairs
    resolution = peer.mapping_resolution(p.resolved.mapping, pairs, p.mapping.names)
    return {
        "dataset_dir": str(p.dataset_dir),
        "datalist": str(p.datalist_path),
        "n_train_cases": len(p.entries),  # the peer's count: every case in the datalist
        "n_train_fold_cases": len(p.entries) - n_val,
        "n_val_cases": n_val,
        "label_mappings": {"default": pairs},
        "label_mapping_resolution": resolution,
        "label_mapping_resolution_text": p.mapping.resolution,
        "label_dict_path": str(p.label_dict_path),
        "bundle": bundle,
        "label_names": {str(k): v for k, v in p.mapping.names.items()},
        "new_classes": [dict(c) for c in p.mapping.new_classes],  # --new-class: [{local, global, name}]
        "dataset_audit": p.audit,
        "smoke": p.resolved.preset == "smoke",
        "sanity": p.resolved.preset == "sanity",
        "auto_seg": bool(p.resolved["auto_seg"]),
        "formal_eval": not p.request.skip_formal_eval,
        "forgetting_check": p.forgetting.to_json() if p.forgetting else None,
        "modality": p.modality.to_json() if p.modality else None,  # inputs/modality.py; the model: bundle.model
        "pretrained_weights": p.weights.to_json(),
        "seed": p.request.seed,
    }


def bundle_block(p: Prepared) -> dict[str, Any] | None:
    """input.bundle: the bundle's provenance; a sanity run also names the files where it differs from the
    pinned upstream, which is what keeps it from the Task06 reference."""
    if p.bundle is None:
        return None
    block = p.bundle.to_json()
    if p.resolved.preset == "sanity" and not p.bundle.comparable:
        block["differing_files"] = bundle_source.differing_files(p.bundle)
    return block


def _environment_block(p: Prepared) -> dict[str, Any]:
    keys = ("gpu_count", "gpu_name", "gpu_total_mb", "gpu_free_mb", "host_ram_mb", "cuda_available", "python",
            "packages", "cpu_count", "platform", "cuda_visible_devices")
    return {k: p.env.get(k) for k in keys} | {"nproc_per_node_env": os.environ.get("NPROC_PER_NODE")}


def _invocation_block(p: Prepared, results: dict[str, PhaseResult]) -> dict[str, Any]:
    first = next(iter(p.commands.values()))
    prefix = first[: first.index("--config_file")]

    def names(stack: list[str]) -> list[str]:
        return peer.stack_names(stack, p.bundle_dir, p.out_dir)

    return {
        "command": p.request.command_line,
        "commands": p.commands,
        "command_prefix": shlex.join(prefix),
        "command_prefix_argv": prefix,
        "config_stack": names(p.staged.train_stack),
        "config_stack_paths": p.staged.train_stack,
        "eval_config_stack": names(p.staged.eval_stack),
        "eval_config_stack_paths": p.staged.eval_stack,
        "phase_return_codes": {name: r.return_code for name, r in results.items()},
        "multi_gpu": p.plan.multi_gpu,
        "cwd": str(p.out_dir),
        "launch_dir": os.getcwd(),  # where `command` was typed: --resume reads its relative paths from here
        "override_file": names([str(p.staged.override)])[0],
        "override_path": str(p.staged.override),
        "bundle_dir": str(p.bundle_dir),
    }


def output_block(p: Prepared, ev: Evidence, verdict: dict[str, Any]) -> dict[str, Any]:
    """output.json's `output`: the evidence, the decision and the statistics of the gain."""
    out = {
        "finetuned_ckpt": str(ev.finetuned_ckpt),
        "finetuned_ckpt_exists": ev.finetuned_exists,
        "pretrained_ckpt": p.weights.path,
        "checkpoint_comparisons_to_pretrained": peer.checkpoint_comparisons(ev.comparison),
        "finetuned_ckpt_matches_pretrained_weights": ev.comparison["identical"] if ev.comparison else None,
        "formal_eval_enabled": ev.formal_enabled,
        "formal_pretrained_val_dice": ev.formal_pre,
        "formal_finetuned_val_dice": ev.formal_post,
        "formal_pretrained_per_case": ev.per_case_pre,
        "formal_finetuned_per_case": ev.per_case_post,
        **ev.trace,
        **verdict,
        "oom": ev.oom,
        "sanity_reference_checks": None,
        "sanity_recovery_demonstrated": None,
    }
    out["loss_warning"] = loss_warning(ev.trace, p.plan.precision)
    out |= gain_stats.output_fields(ev.per_case_pre, ev.per_case_post, verdict["recommended_is_finetuned"])
    out |= per_class.output_fields(ev.case_class_pre, ev.case_class_post, ev.classes)
    out["forgetting"] = ev.forgetting
    out["boundary"] = ev.boundary  # NSD and HD95 of every formal evaluation (evidence/boundary.py)
    # the peer skill's names for the training-trace fields
    out |= {"baseline_val_dice": out["training_start_val_dice"], "best_val_dice": out["training_best_val_dice"],
            "best_epoch_index": out["training_best_epoch_index"]}
    return out


def _runtime_block(results: dict[str, PhaseResult], wall: float, return_code: int,
                   warm_note: str | None = None, planned_log: Path | None = None) -> dict[str, Any]:
    peaks = [r.peak_gpu_mb for r in results.values() if r.peak_gpu_mb is not None]
    last = list(results.values())[-1] if results else None
    return {
        "oom": any(r.facts.oom or r.failure == "oom" for r in results.values()),
        "wall_seconds": round(wall, 2),
        "peak_gpu_mb": peer.whole_mib(max(peaks) if peaks else None),
        "phase_peak_gpu_mb": {n: r.peak_gpu_mb for n, r in results.items()},
        "phase_peak_rss_mb": {n: r.peak_rss_mb for n, r in results.items()},
        "phase_seconds": {n: r.seconds for n, r in results.items()},
        "phase_timing": {n: r.timing() for n, r in results.items()},
        "phase_failures": {n: r.failure for n, r in results.items() if r.failure},
        "phase_gpu_samples": {n: r.gpu for n, r in results.items() if r.gpu.get("gpu_samples")},
        "return_code": return_code,
        "log_path": last.log_path if last else str(planned_log),  # a string always, as the peer's schema wants
        "phase_logs": {n: r.log_path for n, r in results.items()},
        "log_tail": last.log_tail[-20:] if last else [],
        "warm_start": {"phases": {n: r.start for n, r in results.items()}, "note": warm_note},
        "reused_phases": {n: r.reused_from for n, r in results.items() if r.reused_from},
    }


def loss_warning(trace: dict[str, Any], precision: str) -> str | None:
    """When the training loss went NaN or Inf: what it means for the result and the flag that usually fixes it."""
    if trace["train_loss_finite"] or not trace["train_iterations"]:
        return None
    cause = (f"under {precision} autocast this is most often an overflow: rerun with --precision bf16 (or fp32)"
             if precision == "fp16" else "rerun with a lower --learning-rate, or --precision fp32")
    return (f"the training loss became NaN or Inf within {trace['train_iterations']} iterations (ignite stopped the "
            f"training there); {cause}")


def headline(out: dict[str, Any], status: str) -> str:
    if status == "planned":
        return "planned only (--dry-run): configs staged, no phase was started"
    if status != "passed":
        return f"run {status}"
    pre, post = out.get("formal_pretrained_val_dice"), out.get("formal_finetuned_val_dice")
    keep = "keep the finetuned checkpoint" if out["recommended_is_finetuned"] else "keep the pretrained checkpoint"
    test = out.get("test") or {}
    if out.get("verdict_split") == "test":
        t_pre, t_post = test["formal_pretrained_val_dice"], test["formal_finetuned_val_dice"]
        return (f"test Dice {t_pre:.4f} -> {t_post:.4f} ({t_post - t_pre:+.4f}{gain_stats.summary(test.get('formal_gain_stats'))}) "
                f"on {test['n_cases']} held-out cases; {keep}"
                + (f"; validation {pre:.4f} -> {post:.4f}" if pre is not None and post is not None else "")
                + forgetting.headline_tail(out.get("forgetting")))
    if pre is not None and post is not None:
        return (f"formal Dice {pre:.4f} -> {post:.4f} ({post - pre:+.4f}{gain_stats.summary(out.get('formal_gain_stats'))}); "
                f"{keep}{validation_note(test)}{forgetting.headline_tail(out.get('forgetting'))}")
    start, best = out.get("training_start_val_dice"), out.get("training_best_val_dice")
    if start is not None and best is not None:
        return f"training-time Dice {start:.4f} -> best {best:.4f}; {keep}{forgetting.headline_tail(out.get('forgetting'))}"
    return keep


def validation_note(test: dict[str, Any]) -> str:
    """What a verdict on the validation cases must say: those cases also chose the finetune's kept epoch."""
    why = f" (the {test['n_cases']} testing case(s) are too few for a verdict)" if test else ""
    return f"; on the validation cases, which also chose the epoch{why}"


def build(p: Prepared, run: PhaseRun, out: dict[str, Any], status: RunStatus, *, bundle: dict[str, Any] | None,
          wall: float, started: float) -> dict[str, Any]:
    """The output.json document, headline first: every field docs/design.md lists; `bundle` is bundle_block(p)."""
    results = run.results
    result = skeleton(status.status, p.weights.model_name) | {
        "model_repo": MODELS[p.bundle.model].hub_repo if p.bundle else MODELS[CT].hub_repo,  # the family's (#37)
        "headline": headline(out, status.status),
        "input": _input_block(p, bundle),
        "environment": _environment_block(p),
        "plan": p.plan.to_json(),
        "invocation": _invocation_block(p, results),
        "output": out | status.output_fields(),
        "runtime": _runtime_block(results, wall, status.code, run.warm_note, p.planned_log())
        | {"preprocess_cache": cache_block(p, run), "resumed": resume.runtime_block(p.out_dir, p.resume_point),
           "started_at": round(started, 3)},
        "cost": {"steps": [{"step": n, "seconds": r.seconds, "peak_gpu_mb": peer.whole_mib(r.peak_gpu_mb)}
                           for n, r in results.items()],
                 "total_seconds": round(wall, 2)},
    }
    failed = next((r for r in results.values() if r.return_code != 0 or r.failure), None)
    if failed is not None or run.interrupted:
        bad = failed or list(results.values())[-1]
        result["error"] = {"kind": bad.failure or "crash", "phase": bad.name,
                           "message": failure_message(bad, p.plan.patch_size)}
    return result


def cache_block(p: Prepared, run: PhaseRun) -> dict[str, Any]:
    if p.cache is None:
        return preprocess_cache.disabled(p.cache_note or "off")
    return p.cache.report(run.cache_start)


def smaller_patch(patch: list[int]) -> list[int]:
    """The next ladder rung below `patch` (by voxels), or 64^3 at the bottom."""
    voxels = patch[0] * patch[1] * patch[2]
    rungs = [LARGEST_PATCH, *(rung for _, rung in reversed(PATCH_LADDER))]
    below = [rung for rung in rungs if rung[0] * rung[1] * rung[2] < voxels]
    return list(below[0]) if below else [64, 64, 64]


def failure_message(r: PhaseResult, patch: list[int] | None = None) -> str:
    if r.failure == "oom":
        at = f" at patch_size {json.dumps(patch)}" if patch else ""
        smaller = json.dumps(smaller_patch(patch) if patch else [96, 96, 96]).replace(" ", "")
        return (f"phase {r.name} ran out of memory{at}. Rerun with a smaller patch, --patch-size '{smaller}' (or "
                f"leave --patch-size out for the plan's choice from free GPU memory), a lower --cache-rate, or "
                f"fewer workers; see {r.log_path}.")
    if r.failure == "timeout":
        return f"phase {r.name} exceeded the phase timeout and was stopped; see {r.log_path}."
    if r.failure == "interrupted":
        return f"phase {r.name} was interrupted (Ctrl-C or SIGTERM); its process group was stopped."
    return f"phase {r.name} exited with code {r.return_code}; the last log lines are in runtime.log_tail, all of it in {r.log_path}."
