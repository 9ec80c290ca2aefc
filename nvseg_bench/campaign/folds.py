"""Cross-validation (`--folds all` or `--folds 0,1,2,3,4`): a verdict on every case, not on fold 0's few.

The pretrained checkpoint is evaluated once over the cases of every chosen fold (OUT/eval_pretrained,
with OUT/datalist-cv.json: those cases, all fold 0); nothing in that evaluation depends on the fold.
Then, per fold K, one finetune on every other case and one evaluation of it on fold K's cases, in
OUT/fold-K/: a complete evidence pack with its own output.json, its datalist (fold K relabelled 0, the
rest 1) and its own cases' part of the shared evaluation (their predictions linked, the CSVs cut to
them), so the verifier checks each fold as it checks a single run. The preprocessing cache is shared
as it is by any runs.

OUT/cv.json pools the per-case Dice of every case, each from the fold that held it out: the paired
statistics of evidence/gain_stats.py over all cases, the spread of the per-fold gains, and the checkpoint
by decision.CV_RULE. Pooling is evidence/pool.py's; OUT/output.json (output/pooled.py) carries those
pooled figures over the median-gain fold's document, and OUT/eval_finetuned holds every fold's
predictions, so OUT itself is a pack the verifier re-derives. Refused with --seeds (a fold x seed grid), --dry-run, --skip-formal-eval and --resume.
"""
from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from nvseg_bench.campaign import cv_test, last_epoch, parallel
from nvseg_bench.campaign.members import SHARED_PHASE, CampaignStarter, run_member, share_log, with_parent, with_values
from nvseg_bench.errors import EXIT_INTERRUPTED, EXIT_PHASE_FAILED, EXIT_SCHEMA_BUG, ArgumentError
from nvseg_bench.evidence import collect, decision, gain_stats, pool, selection
from nvseg_bench.inputs import folds as cv_folds
from nvseg_bench.inputs import testing
from nvseg_bench.model.checkpoints import compare_checkpoints
from nvseg_bench.inputs.request import Request
from nvseg_bench.output import write
from nvseg_bench.output.pooled import cv_document
from nvseg_bench.paths import CV_FILE, fold_dir
from nvseg_bench.phase_names import EVAL_FINETUNED, EVAL_LAST
from nvseg_bench.phases import warm
from nvseg_bench.phases.loop import run_phases
from nvseg_bench.phases.runner import PhaseResult
from nvseg_bench.prepare import make_output_dir, prepare, resolve_dirs
from nvseg_bench.prepared import Prepared
from nvseg_bench.run import Outcome
from nvseg_bench.store.files import write_atomic
from nvseg_bench.tracking import session

ALL_CASES = "datalist-cv.json"


def refuse_combinations(req: Request) -> None:
    asked = [flag for flag, on in (("--seeds", bool(req.seeds)), ("--dry-run", req.dry_run),
                                   ("--skip-formal-eval", req.skip_formal_eval), ("--resume", req.resuming)) if on]
    if asked:
        raise ArgumentError(f"--folds runs one formal finetune per fold; it cannot be combined with {', '.join(asked)}.",
                            fix=["Drop --folds for a single run or a seed sweep, or drop the other flag: a fold x seed "
                                 "grid is not supported (run --seed S --folds all once per seed instead)."])


def pretrained_pass(first: Prepared, every: Path, out_dir: Path,
                    starter: warm.WarmStarter | None = None) -> tuple[PhaseResult | None, bool]:
    """eval_pretrained once over every chosen case, into OUT/eval_pretrained; (result, interrupted)."""
    cases = json.loads(every.read_text())["training"]
    command = with_values(first.commands[SHARED_PHASE], {"output_dir": str(out_dir / SHARED_PHASE),
                                                         "data_list_file_path": str(every)})
    whole = replace(first, out_dir=out_dir, entries=cases, datalist_path=every, commands={SHARED_PHASE: command})
    run = run_phases(whole, time.time(), starter, shared_starter=starter is not None)
    return run.results.get(SHARED_PHASE), run.interrupted


def fold_cases(entries: list[dict], fold: int) -> set[str]:
    return {Path(e["image"]).name for e in entries if e["fold"] == fold}


def run_fold(p: Prepared, shared: PhaseResult, out_dir: Path, cases: set[str],
             parent: session.Tracker | None = None, starter: warm.WarmStarter | None = None) -> Outcome:
    """One fold: its cases' part of the shared evaluation, then finetune and eval_finetuned, then output.json."""
    started = (time.monotonic(), time.time())
    pool.merge_eval([(out_dir / SHARED_PHASE, cases)], p.out_dir / SHARED_PHASE)
    share_log(out_dir, p.out_dir)
    outcome, _ = run_member(p, shared, parent, started, starter)
    return outcome


def fold_member(req: Request, fold: int, shared: PhaseResult, out_dir: Path, cases: set[str]) -> Outcome:
    """One fold in a worker of --parallel: prepared again there, under the worker's share of the machine."""
    p = prepare(replace(req, output_dir=fold_dir(out_dir, fold), datalist=fold_dir(out_dir, fold) / "datalist.json",
                        folds=None, parallel=None))
    return run_fold(last_epoch.with_last_epoch(p, req.cv_checkpoint), shared, out_dir, cases)


def side_by_side(req: Request, chosen: list[int], out_dir: Path, entries: list[dict], shared: PhaseResult,
                 show: CvShow) -> dict[int, Outcome | str]:
    """--parallel N: every fold, up to N at once; fold -> its Outcome, or why it failed."""
    for index, fold in enumerate(chosen, start=1):
        show.fold_started(fold, index, len(chosen))
    jobs = {fold: (fold_member, (req, fold, shared, out_dir, fold_cases(entries, fold))) for fold in chosen}
    return parallel.run_members(jobs, req.parallel or 1, lambda fold, done: (
        show.member_failed(f"fold {fold}", done) if isinstance(done, str) else show.fold_done(fold, done)))


def _fold_row(fold: int, doc: dict[str, Any], path: Path, cases: set[str]) -> dict[str, Any]:
    out = doc.get("output", {})
    keys = ("formal_pretrained_val_dice", "formal_finetuned_val_dice", "gain_confidence", "finetuned_ckpt",
            "finetuned_ckpt_exists", "recommended_is_finetuned", "pretrained_ckpt")
    return {"fold": fold, "output_json": str(path), "status": doc.get("status"), "cases": sorted(cases),
            "formal_gain": out.get("formal_improvement_over_pretrained"),
            "tensors_changed": out.get("finetuned_ckpt_matches_pretrained_weights") is False} | {k: out.get(k) for k in keys}


def scored_folder(scored: str) -> str:
    """The eval folder of each fold whose per-case Dice the pooled verdict uses (--cv-checkpoint)."""
    return EVAL_LAST if scored == "last" else EVAL_FINETUNED


def with_last_epoch(rows: list[dict[str, Any]], cases: dict[str, dict[str, Any]], out_dir: Path, scored: str) -> None:
    """Each case's last-epoch Dice beside its best-epoch one, each fold's last-epoch gain and checkpoint, and
    `finetuned` / `formal_gain` set to the scored checkpoint's (filled in place, before anything reads them)."""
    last = {r["fold"]: collect.per_case_dice(fold_dir(out_dir, r["fold"]) / EVAL_LAST) for r in rows}
    for name, case in cases.items():
        case["best"], case["last"] = case["finetuned"], last.get(case["fold"], {}).get(name)
        case["finetuned"] = case[scored]
    for row in rows:
        before = [c["pretrained"] for c in cases.values() if c["fold"] == row["fold"] and c["pretrained"] is not None]
        after = list(last[row["fold"]].values())
        row["best_gain"] = row["formal_gain"]
        row["last_gain"] = pool.mean(after) - pool.mean(before) if before and after else None
        ckpt = Path(row["finetuned_ckpt"]).with_name(last_epoch.LAST_NAME) if row.get("finetuned_ckpt") else None
        row["last_ckpt"] = str(ckpt) if ckpt is not None and ckpt.is_file() else None
        row["formal_gain"] = row[f"{scored}_gain"]


def scored_checkpoint(row: dict[str, Any], scored: str, pretrained: str) -> dict[str, Any]:
    """The representative fold's scored checkpoint: its best epoch as the fold's own output.json states it, or
    its last epoch with the tensor comparison against the pretrained checkpoint (made here, once)."""
    if scored == "best":
        return {"fold": row.get("fold"), "epoch": scored, "path": row.get("finetuned_ckpt"), "comparison": None,
                "exists": bool(row.get("finetuned_ckpt_exists")), "changed": bool(row.get("tensors_changed"))}
    path = row.get("last_ckpt")
    exists = bool(path) and Path(path).is_file()
    comparison = compare_checkpoints(Path(path), Path(pretrained)) if exists and pretrained else None
    return {"fold": row.get("fold"), "epoch": scored, "path": path, "exists": exists, "comparison": comparison,
            "changed": comparison is not None and comparison["identical"] is False}


def headline(cv: dict[str, Any]) -> str:
    pooled, k, n = cv["pooled"], len(cv["folds"]), cv["n_cases"]
    finished = {r["fold"] for r in cv["runs"] if r["status"] == "passed"}
    unfinished = [f for f in cv["folds"] if f not in finished]
    keep = (f"keep fold {cv['recommended_fold']}'s finetuned checkpoint" if cv["recommended_is_finetuned"]
            else "keep the pretrained checkpoint")
    if unfinished or not pooled.get("n_cases"):
        return f"{k}-fold CV: fold(s) {unfinished} did not finish, so there is no pooled verdict; {keep}"
    spread = cv["fold_gain"]
    epoch = "each fold's last epoch" if cv["cv_checkpoint"] == "last" else "each fold's best epoch, selected on the scored cases"
    return (f"{k}-fold CV over {n} cases ({epoch}): formal Dice {cv['formal_pretrained_val_dice']:.4f} -> "
            f"{cv['formal_finetuned_val_dice']:.4f} ({pooled['mean_gain']:+.4f}{gain_stats.summary(pooled)}; "
            f"fold gains {spread['min']:+.4f}..{spread['max']:+.4f}){selection.summary(cv['selection'])}; {keep}")


def assemble(docs: dict[int, tuple[dict[str, Any], Path]], entries: list[dict], chosen: list[int], out_dir: Path,
             source: str, pretrained: str = "", scored: str = "last") -> dict[str, Any]:
    """cv.json from each fold's output.json document (and its path); `scored`: --cv-checkpoint."""
    rows = [_fold_row(k, doc, path, fold_cases(entries, k)) for k, (doc, path) in docs.items()]
    cases = pool.pooled_cases({k: doc for k, (doc, _) in docs.items()})
    with_last_epoch(rows, cases, out_dir, scored)
    before = {n: c["pretrained"] for n, c in cases.items() if c["pretrained"] is not None}
    after = {n: c["finetuned"] for n, c in cases.items() if c["finetuned"] is not None}
    pooled = gain_stats.gain_stats(before, after)
    gains = {r["fold"]: r["formal_gain"] for r in rows if r["formal_gain"] is not None}
    every_fold = len(rows) == len(chosen) and all(r["status"] == "passed" for r in rows)
    median = decision.median_fold(gains)
    row = next((r for r in rows if r["fold"] == median), {})
    pretrained = next((r["pretrained_ckpt"] for r in rows if r["pretrained_ckpt"]), pretrained)
    kept = scored_checkpoint(row, scored, pretrained)
    verdict = decision.decide_cv(confidence=pooled["confidence"] if every_fold else None,
                                 pooled_gain=pooled["mean_gain"], fold=median, fold_ckpt=kept["path"],
                                 fold_changed=kept["changed"] and kept["exists"], pretrained_ckpt=pretrained,
                                 epoch=scored)
    cv = {
        "kind": "nvseg_cross_validation",
        "out_dir": str(out_dir),
        "datalist_source": source,
        "all_cases_datalist": str(out_dir / ALL_CASES),
        "folds": chosen,
        "n_cases": len(cases),
        "shared_phase": SHARED_PHASE,
        "cv_checkpoint": scored,
        "scored_phase": scored_folder(scored),
        "runs": rows,
        "cases": cases,
        "formal_pretrained_val_dice": pool.mean(before.values()),
        "formal_finetuned_val_dice": pool.mean(after.values()),
        "pooled": pooled,
        "gain_confidence": pooled["confidence"] if every_fold else None,
        "fold_gain": pool.distribution(list(gains.values())),
        "selection": selection.selection_block(before, *({n: c[e] for n, c in cases.items() if c[e] is not None}
                                                          for e in ("best", "last")), scored),
        "scored_checkpoint": kept,
        "representative_fold": median,
        "recommendation_rule": decision.CV_RULE,
        **verdict,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return cv | {"headline": headline(cv)}


def write_pack(cv: dict[str, Any], docs: dict[int, tuple[dict[str, Any], Path]], req: Request, out_dir: Path,
               wall: float, p: Prepared, tracking: dict[str, Any] | None = None,
               test: dict[str, Any] | None = None) -> tuple[Path, list[str]]:
    """OUT/cv.json, OUT/eval_finetuned (every fold's predictions), OUT/forget_* (the forgetting check's maps),
    OUT/output.json (with `test`, the testing cases' scores, cv_test.py) and OUT/manifest.json; `p` is any
    fold's Prepared (their mapping and plan are the same)."""
    write_atomic(out_dir / CV_FILE, json.dumps(cv, indent=2) + "\n")
    scored = scored_folder(cv["cv_checkpoint"])  # the scored checkpoint's predictions stand for the finetuned ones
    parts = [(fold_dir(out_dir, r["fold"]) / scored, set(r["cases"])) for r in cv["runs"]
             if (fold_dir(out_dir, r["fold"]) / scored).is_dir()]
    pool.merge_eval(parts, out_dir / EVAL_FINETUNED)
    rep = cv["representative_fold"] if cv["representative_fold"] is not None else next(iter(docs))
    fields = pool.pooled_classes(p, out_dir) | {"forgetting": pool.pooled_forgetting(p, cv, out_dir), "test": test}
    fields |= {"boundary": pool.pooled_boundary(p, out_dir)}
    doc = cv_document(cv, docs[rep][0], command_line=req.command_line, out_dir=out_dir, wall=wall,
                      pooled_fields=fields, tracking=tracking)
    path, errors = write.write(doc, out_dir)
    inputs = json.loads((fold_dir(out_dir, rep) / collect.MANIFEST).read_text()).get("inputs", {})
    collect.write_manifest(out_dir, inputs)
    return path, errors


class CvShow(Protocol):
    def plan(self, p: Prepared) -> None: ...

    def fold_started(self, fold: int, index: int, total: int) -> None: ...

    def fold_done(self, fold: int, outcome: Outcome) -> None: ...

    def member_failed(self, name: str, why: str) -> None: ...

    def cv_done(self, cv: dict[str, Any], path: Path) -> None: ...

    def tracked(self, tracker: session.Tracker, warnings: list[str]) -> None: ...


def prepare_folds(req: Request) -> tuple[dict[int, Prepared], list[dict], Path, str, testing.TestSplit | None]:
    """Every fold prepared (all input checks) before any phase; the entries, the all-case datalist, the source
    and the labelled testing cases (never folded in; scored once after the folds, cv_test.py)."""
    dataset_dir, out_dir = resolve_dirs(req)
    make_output_dir(req.output_dir, out_dir)
    entries, path, source = cv_folds.source_entries(dataset_dir, req.datalist, out_dir)
    chosen = cv_folds.chosen_folds(entries, path, dataset_dir, req.folds or cv_folds.ALL)
    split = testing.read_testing(path, source, dataset_dir)
    testing.refuse_leaks(split, entries, dataset_dir)
    # the testing list rides along in the all-case datalist (the bundle reads only its training entries), so the
    # verifier finds the testing cases in the CV pack's own datalist
    listed = {"testing": list(split.entries)} if split is not None and split.entries else {}
    every = cv_folds.write_json(out_dir / ALL_CASES, cv_folds.validation_datalist(entries, chosen) | listed)
    prepared = {}
    for fold in chosen:
        datalist = cv_folds.write_json(fold_dir(out_dir, fold) / "datalist.json", cv_folds.fold_datalist(entries, fold))
        prepared[fold] = last_epoch.with_last_epoch(
            prepare(replace(req, output_dir=fold_dir(out_dir, fold), datalist=datalist, folds=None)), req.cv_checkpoint)
    return prepared, entries, every, source, split


def run_cv(req: Request, show: CvShow) -> int:
    """`--folds`: the shared evaluation, every fold, OUT/cv.json and OUT/output.json; the exit code of the
    first fold that failed (EXIT_INTERRUPTED when interrupted), else 0. Bad input raises NvsegError before any phase."""
    refuse_combinations(req)
    started = time.monotonic()
    req, parent = with_parent(req)  # each fold is a child run of the CV's
    with CampaignStarter(req) as starter:  # one warm-start server for every fold, importing while they prepare
        prepared, entries, every, source, split = prepare_folds(req)
        chosen = list(prepared)
        out_dir = prepared[chosen[0]].out_dir.parent
        show.plan(prepared[chosen[0]])  # every fold's plan is this one's but for its datalist
        shared, interrupted = pretrained_pass(prepared[chosen[0]], every, out_dir, starter)
        docs: dict[int, tuple[dict[str, Any], Path]] = {}
        code = EXIT_INTERRUPTED if interrupted else 0
        ok = shared is not None and shared.return_code == 0 and shared.failure is None
        if not ok and not interrupted:
            code = EXIT_PHASE_FAILED  # the shared evaluation failed: no fold can be compared
        if ok and (req.parallel or 1) > 1:
            found = side_by_side(req, chosen, out_dir, entries, shared, show)
            docs = {k: (o.doc, o.path) for k, o in found.items() if not isinstance(o, str)}
            code = code or next((o.code for o in found.values() if not isinstance(o, str) and o.code), 0) or (
                EXIT_PHASE_FAILED if len(docs) < len(chosen) else 0)
        for index, fold in enumerate(chosen if ok and (req.parallel or 1) == 1 else [], start=1):
            show.fold_started(fold, index, len(chosen))
            outcome = run_fold(prepared[fold], shared, out_dir, fold_cases(entries, fold), parent, starter)
            show.fold_done(fold, outcome)
            docs[fold] = (outcome.doc, outcome.path)
            code = code or outcome.code
            if outcome.code == EXIT_INTERRUPTED:
                break
    cv = assemble(docs, entries, chosen, out_dir, source, prepared[chosen[0]].weights.path, req.cv_checkpoint)
    if not ok and shared is not None:
        cv["headline"] = (f"{len(chosen)}-fold CV: the shared evaluation of the pretrained checkpoint did not finish "
                          f"({shared.failure or f'exit {shared.return_code}'}; see {shared.log_path}); no fold ran")
    test, tested = cv_test.score_testing(prepared[chosen[0]], split, cv, out_dir) if docs and not code else (None, {})
    if any(r.return_code != 0 or r.failure for r in tested.values()):
        code = EXIT_PHASE_FAILED
    if docs:
        path, errors = write_pack(cv, docs, req, out_dir, time.monotonic() - started, prepared[chosen[0]],
                                  parent.block(), test)
        code = code or (EXIT_SCHEMA_BUG if errors else 0)
    else:
        write_atomic(out_dir / CV_FILE, json.dumps(cv, indent=2) + "\n")
        path = out_dir / CV_FILE
    show.cv_done(cv, path.resolve())
    doc = json.loads(path.read_text()) if path.name == "output.json" else {"status": "failed", "headline": cv["headline"]}
    show.tracked(parent, session.finish(parent, doc, session.evidence_files(out_dir, CV_FILE)))
    return code
