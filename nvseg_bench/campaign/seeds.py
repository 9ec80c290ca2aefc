"""Seed sweeps (`--seeds`): one finetune under several seeds, and the spread of its formal gain.

`nvseg-finetune ... --seeds 0,1,2 --output-dir OUT` evaluates the pretrained checkpoint once (in
OUT/seed-<first seed>/eval_pretrained; its scores do not depend on the seed), then runs finetune and
eval_finetuned once per seed into OUT/seed-S/. The shared evaluation folder and log are linked (or
copied) into every seed's folder, so each OUT/seed-S/ is a complete evidence pack with its own
output.json. OUT/sweep.json holds the gain per seed, its mean, min, max and standard deviation, and
the checkpoint the sweep recommends.

The recommendation never takes the best seed: the seeds are scored on the same validation cases
that would choose among them, so the maximum is the luckiest draw of noise and overstates what the
next run gives. The finetuned checkpoint is recommended only when every seed's own run kept it
(gain above the decision's 0.001, tensors changed); then the seed with the median gain (the lower
median for an even count), else the pretrained checkpoint.
"""
from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from nvseg_bench.campaign import parallel
from nvseg_bench.campaign.members import SHARED_PHASE, CampaignStarter, run_member, share, with_parent
from nvseg_bench.errors import EXIT_INTERRUPTED, EXIT_PHASE_FAILED, ArgumentError
from nvseg_bench.evidence.pool import distribution
from nvseg_bench.inputs.request import Request
from nvseg_bench.paths import SWEEP_FILE, seed_dir
from nvseg_bench.phases import warm
from nvseg_bench.phases.runner import PhaseResult
from nvseg_bench.prepare import prepare
from nvseg_bench.run import Outcome
from nvseg_bench.store.files import write_atomic
from nvseg_bench.tracking import session

RULE = ("finetuned only when every seed's own run kept its finetuned checkpoint; then the median-gain seed "
        "(lower median for an even count), never the best: the seeds are ranked on the validation cases that "
        "score them, so the maximum overstates the next run")


def _gain(doc: dict[str, Any]) -> float | None:
    return doc.get("output", {}).get("formal_improvement_over_pretrained")


def _run_row(seed: int, doc: dict[str, Any], path: Path) -> dict[str, Any]:
    out = doc.get("output", {})
    stats = out.get("formal_gain_stats") or {}
    keys = ("formal_pretrained_val_dice", "formal_finetuned_val_dice", "training_start_val_dice",
            "training_best_val_dice", "recommended_is_finetuned", "finetuned_ckpt", "pretrained_ckpt",
            "gain_confidence")
    return {"seed": seed, "output_json": str(path), "status": doc.get("status"), "formal_gain": _gain(doc),
            "ci_low": stats.get("ci_low"), "ci_high": stats.get("ci_high")} | {k: out.get(k) for k in keys}


def recommend(rows: list[dict[str, Any]]) -> tuple[int | None, str | None, str]:
    """(seed, checkpoint, reason) by RULE; seed None means the pretrained checkpoint."""
    pretrained = next((r["pretrained_ckpt"] for r in rows if r.get("pretrained_ckpt")), None)
    failed = [r["seed"] for r in rows if r["status"] != "passed" or r["formal_gain"] is None]
    if failed:
        return None, pretrained, f"seeds {failed} did not finish with a formal gain; keep the pretrained checkpoint"
    kept = [r for r in rows if r["recommended_is_finetuned"]]
    if len(kept) < len(rows):
        return None, pretrained, (f"only {len(kept)} of {len(rows)} seeds kept their finetuned checkpoint: the gain "
                                  "is not consistent across seeds; keep the pretrained checkpoint")
    ranked = sorted(rows, key=lambda r: (r["formal_gain"], r["seed"]))
    median = ranked[(len(ranked) - 1) // 2]
    return median["seed"], median["finetuned_ckpt"], (
        f"every seed kept its finetuned checkpoint (gains {ranked[0]['formal_gain']:+.4f}..{ranked[-1]['formal_gain']:+.4f}); "
        f"seed {median['seed']} has the median gain {median['formal_gain']:+.4f}; the best seed is not taken because "
        "it was picked on the same validation cases")


def assemble(docs: dict[int, tuple[dict[str, Any], Path]], out_dir: Path) -> dict[str, Any]:
    """sweep.json from each seed's output.json document (and its path), in seed order as given."""
    rows = [_run_row(seed, doc, path) for seed, (doc, path) in docs.items()]
    seed, ckpt, reason = recommend(rows)
    gains = [r["formal_gain"] for r in rows if r["formal_gain"] is not None]
    sweep = {
        "kind": "nvseg_seed_sweep",
        "out_dir": str(out_dir),
        "seeds": list(docs),
        "shared_phase": SHARED_PHASE,
        "shared_from_seed": next(iter(docs), None),
        "runs": rows,
        "formal_gain": distribution(gains),
        "n_clear": sum(1 for r in rows if r["gain_confidence"] == "clear"),
        "recommended_seed": seed,
        "recommended_ckpt": ckpt,
        "recommended_is_finetuned": seed is not None,
        "recommendation_rule": RULE,
        "recommendation_reason": reason,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return sweep | {"representative_seed": representative(sweep)}


def representative(sweep: dict[str, Any]) -> int | None:
    """The seed whose run stands for the sweep where one run is judged: the recommended seed, else the
    median-gain seed, else the first."""
    if sweep["recommended_seed"] is not None:
        return sweep["recommended_seed"]
    rows = sorted((r for r in sweep["runs"] if r["formal_gain"] is not None), key=lambda r: (r["formal_gain"], r["seed"]))
    return rows[(len(rows) - 1) // 2]["seed"] if rows else next(iter(sweep["seeds"]), None)


def evidence_dir(out_dir: Path) -> Path:
    """out_dir itself for a single run; for a sweep, its representative seed's folder."""
    path = out_dir / SWEEP_FILE
    if (out_dir / "output.json").is_file() or not path.is_file():
        return out_dir
    seed = json.loads(path.read_text()).get("representative_seed")
    return seed_dir(out_dir, seed) if seed is not None else out_dir


def refuse_combinations(seed: int | None, dry_run: bool, skip_formal_eval: bool) -> None:
    if seed is not None or dry_run or skip_formal_eval:
        raise ArgumentError("--seeds runs one formal finetune per seed; it cannot be combined with --seed, "
                            "--dry-run or --skip-formal-eval.",
                            fix=["Drop --seed (the sweep sets it per run), or drop --seeds for a single run."])


def write(docs: dict[int, tuple[dict[str, Any], Path]], out_dir: Path) -> tuple[Path, dict[str, Any]]:
    """OUT/sweep.json from every seed's output.json; returns its path and content."""
    sweep = assemble(docs, out_dir.resolve())
    target = out_dir / SWEEP_FILE
    write_atomic(target, json.dumps(sweep, indent=2) + "\n")
    return target, sweep


def sweep_line(sweep: dict[str, Any]) -> str:
    gain = sweep["formal_gain"]
    spread = ("no formal gain" if not gain["n"] else
              f"formal gain mean {gain['mean']:+.4f} (min {gain['min']:+.4f}, max {gain['max']:+.4f}"
              + (f", std {gain['std']:.4f}" if gain["std"] is not None else "") + ")")
    keep = (f"keep seed {sweep['recommended_seed']}'s finetuned checkpoint" if sweep["recommended_is_finetuned"]
            else "keep the pretrained checkpoint")
    return f"sweep of {len(sweep['runs'])} seeds: {spread}; {keep} ({sweep['recommendation_reason']})"


class SweepShow(Protocol):
    def seed_started(self, seed: int, index: int, total: int) -> None: ...

    def seed_done(self, seed: int, outcome: Outcome) -> None: ...

    def member_failed(self, name: str, why: str) -> None: ...

    def sweep_done(self, sweep: dict[str, Any], path: Path) -> None: ...

    def tracked(self, tracker: session.Tracker, warnings: list[str]) -> None: ...


def run_seed(req: Request, seed: int, shared: PhaseResult | None, first_dir: Path | None,
             parent: session.Tracker | None = None, starter: warm.WarmStarter | None = None) -> tuple[Outcome, PhaseResult | None]:
    """One seed's run into OUT/seed-S; `shared` is the first seed's eval_pretrained result (then its folder
    is linked in and the phase is not run again)."""
    started = (time.monotonic(), time.time())
    prepared = prepare(replace(req, output_dir=seed_dir(req.output_dir, seed), seed=seed, seeds=None))
    if shared is not None and first_dir is not None:
        share(first_dir, prepared.out_dir)
    return run_member(prepared, shared, parent, started, starter)


def seed_member(req: Request, seed: int, shared: PhaseResult, first_dir: Path) -> Outcome:
    """One seed in a worker of --parallel, prepared there under the worker's share of the machine."""
    return run_seed(req, seed, shared, first_dir)[0]


def side_by_side(req: Request, seeds: list[int], shared: PhaseResult, first_dir: Path | None,
                 show: SweepShow) -> dict[int, Outcome | str]:
    """--parallel N: the seeds after the first, up to N at once; seed -> its Outcome, or why it failed."""
    for index, seed in enumerate(seeds, start=2):
        show.seed_started(seed, index, len(seeds) + 1)
    jobs = {seed: (seed_member, (replace(req, parallel=None), seed, shared, first_dir)) for seed in seeds}
    return parallel.run_members(jobs, req.parallel or 1, lambda seed, done: (
        show.member_failed(f"seed {seed}", done) if isinstance(done, str) else show.seed_done(seed, done)))


def run_sweep(req: Request, show: SweepShow) -> int:
    """`--seeds`: run every seed, write OUT/sweep.json; the exit code of the first seed that failed, else 0."""
    refuse_combinations(req.seed, req.dry_run, req.skip_formal_eval)
    req, parent = with_parent(req)  # each seed is a child run of the sweep's
    docs: dict[int, tuple[dict[str, Any], Path]] = {}
    shared, first_dir, code = None, None, 0
    seeds = req.seeds or []
    side = (req.parallel or 1) > 1  # the first seed alone (it runs the shared evaluation), the others side by side
    with CampaignStarter(req) as starter:
        for index, seed in enumerate(seeds[:1] if side else seeds, start=1):
            show.seed_started(seed, index, len(seeds))
            outcome, pre = run_seed(req, seed, shared, first_dir, parent, starter)
            show.seed_done(seed, outcome)
            docs[seed] = (outcome.doc, outcome.path)
            code = code or outcome.code
            if shared is None:
                shared, first_dir = pre, outcome.path.parent
            if outcome.code == EXIT_INTERRUPTED or pre is None or pre.return_code != 0:
                side = False
                break  # interrupted, or the shared evaluation failed: later seeds cannot be compared
    if side and shared is not None:
        found = side_by_side(req, seeds[1:], shared, first_dir, show)
        docs |= {s: (o.doc, o.path) for s, o in found.items() if not isinstance(o, str)}
        code = code or next((o.code for o in found.values() if not isinstance(o, str) and o.code), 0) or (
            EXIT_PHASE_FAILED if len(docs) < len(seeds) else 0)
    target, doc = write(docs, req.output_dir)
    show.sweep_done(doc, target.resolve())
    summary = {f"sweep.formal_gain.{k}": v for k, v in doc["formal_gain"].items() if v is not None}
    headline = {"status": "passed" if code == 0 else "failed", "headline": sweep_line(doc),
                "invocation": {"command": req.command_line}}
    summary["sweep.n_clear"] = doc["n_clear"]
    show.tracked(parent, session.finish(parent, headline, {SWEEP_FILE: target}, summary))
    return code
