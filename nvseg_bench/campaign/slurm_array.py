"""`--slurm-array`: a campaign's members as one SLURM job array, its pooling as a job that waits for it, and
`nvseg-finetune pool OUT`, the pooling itself (also by hand).

Submitting checks every input as a local campaign does (each member prepared, no phase run), writes
OUT/slurm/members.sh (task i runs member i as a normal `nvseg-finetune` run into OUT/fold-K or
OUT/seed-S) and OUT/campaign.json (what the pooling reads), then calls sbatch twice: the array, and the
pooling job with --dependency=afterany on it (planning/slurm.py says why afterany). sbatch's own
SBATCH_* variables (partition, account, GPUs per task) apply to both. Each member evaluates the
pretrained checkpoint on its own cases; the kept pretrained passes (phases/eval_memo.py) share what
can be shared. Pooling reads the members' packs as data: a member without a readable output.json is
named and nothing is written.
"""
from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Protocol

from nvseg_bench.errors import EXIT_SCHEMA_BUG, ArgumentError, NvsegError
from nvseg_bench.evidence import pool as pooling
from nvseg_bench.inputs.request import Request
from nvseg_bench.paths import fold_dir, seed_dir
from nvseg_bench.phase_names import EVAL_PRETRAINED
from nvseg_bench.planning import slurm
from nvseg_bench.prepare import prepare
from nvseg_bench.store.files import write_atomic

CAMPAIGN = "campaign.json"  # OUT/campaign.json: the members and how to pool them
SCRIPT = Path("slurm") / "members.sh"
# campaign flags a member does not take: (flag, takes a value)
CAMPAIGN_FLAGS = {"--folds": True, "--seeds": True, "--parallel": True, "--output-dir": True, "--datalist": True,
                  "--seed": True, "--save-to": True, "--slurm-array": False, "--cv-checkpoint": True}


class SubmitShow(Protocol):
    def submitted(self, lines: list[str]) -> None: ...


def member_base(command_line: str) -> list[str]:
    """The campaign's arguments without its campaign flags: what every member runs with, plus its own."""
    words, kept, skip = shlex.split(command_line)[1:], [], False
    for word in words:
        if skip:
            skip = False
            continue
        flag = word.split("=", 1)[0]
        if flag in CAMPAIGN_FLAGS:
            skip = CAMPAIGN_FLAGS[flag] and "=" not in word
            continue
        kept.append(word)
    return kept


def members(req: Request, out_dir: Path) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """name -> the member's own flags, and what pooling needs; every member prepared (checked) here."""
    if req.folds:
        from nvseg_bench.campaign.folds import prepare_folds

        if req.cv_checkpoint == "last":
            raise ArgumentError("--slurm-array runs each fold as a run of its own, which keeps its best epoch only, "
                                "so the folds cannot be pooled on their last epochs (--cv-checkpoint last, the default).",
                                fix=["Pass --cv-checkpoint best with --slurm-array (cv.json then says the pooled "
                                     "score was selected on the scored cases), or run the folds with --parallel N."])
        prepared, entries, every, source, _ = prepare_folds(replace(req, slurm_array=False))
        flags = {f"fold {k}": ["--datalist", str(fold_dir(out_dir, k) / "datalist.json"),
                               "--output-dir", str(fold_dir(out_dir, k))] for k in prepared}
        return flags, {"kind": "folds", "folds": list(prepared), "entries": entries, "source": source, "cv_checkpoint": "best",
                       "all_cases": str(every)}
    for seed in req.seeds or []:
        prepare(replace(req, output_dir=seed_dir(out_dir, seed), seed=seed, seeds=None, slurm_array=False, dry_run=True))
    flags = {f"seed {s}": ["--seed", str(s), "--output-dir", str(seed_dir(out_dir, s))] for s in req.seeds or []}
    return flags, {"kind": "seeds", "seeds": list(req.seeds or [])}


def _script(commands: list[str]) -> str:
    cases = "".join(f"  {i}) exec {command} ;;\n" for i, command in enumerate(commands))
    return ("#!/bin/bash\n# written by nvseg-finetune --slurm-array: task i runs member i\n"
            f'case "$SLURM_ARRAY_TASK_ID" in\n{cases}esac\n'
            'echo "nvseg-finetune: no member for array task $SLURM_ARRAY_TASK_ID" >&2\nexit 2\n')


def _sbatch(args: list[str]) -> str:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    found = slurm.job_id(done.stdout)
    if done.returncode != 0 or found is None:
        raise ArgumentError(f"sbatch did not take the job (exit {done.returncode}).",
                            evidence=[line for line in (done.stdout + done.stderr).strip().splitlines()[-5:]],
                            fix=["Check the SBATCH_* variables (partition, account) and run the printed command by "
                                 f"hand: {shlex.join(args)}"])
    return found


def submit(req: Request, show: SubmitShow) -> int:
    """Check and stage every member, submit the array and the pooling job, say their ids; 0 when both took."""
    if shutil.which("sbatch") is None:
        raise ArgumentError("--slurm-array submits with sbatch, which is not on PATH.",
                            fix=["Run on a SLURM login node, or drop --slurm-array (--parallel N runs the members "
                                 "side by side on this machine)."])
    out_dir = req.output_dir.resolve()
    flags, recipe = members(req, out_dir)
    python = [sys.executable, "-m", "nvseg_bench"]
    base = member_base(req.command_line)
    commands = [shlex.join([*python, *base, *own]) for own in flags.values()]
    script = out_dir / SCRIPT
    script.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(script, _script(commands))
    script.chmod(0o755)
    campaign = recipe | {"members": list(flags), "member_commands": commands, "base_args": base,
                         "command_line": req.command_line}
    write_atomic(out_dir / CAMPAIGN, json.dumps(campaign, indent=2) + "\n")
    logs = str(script.parent)
    array_id = _sbatch(slurm.array_args(len(commands), str(script), logs, "nvseg"))
    pool_id = _sbatch(slurm.pool_args(array_id, shlex.join([*python, "pool", str(out_dir)]), logs, "nvseg"))
    show.submitted([f"submitted {len(commands)} members as job array {array_id} ({', '.join(flags)}; logs "
                    f"{logs}/member-N.log)", f"submitted the pooling as job {pool_id}, after every task of "
                    f"{array_id} ends ({slurm.POOL_DEPENDENCY}); or pool by hand: nvseg-finetune pool {out_dir}"])
    return 0


def _member_doc(path: Path, name: str) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
        if isinstance(doc, dict) and isinstance(doc.get("output"), dict):
            return doc
        why = "it is not a run's output.json"
    except (OSError, ValueError) as exc:
        why = f"{type(exc).__name__}: {exc}"
    raise ArgumentError(f"{name} has no finished pack to pool: {path} cannot be read ({why}).",
                        fix=["Wait for its array task to end (its log: slurm/member-N.log), rerun that member's line "
                             "of slurm/members.sh, then pool again."])


def pool(out_dir: Path, parse: Callable[[list[str]], Request]) -> tuple[Path, dict[str, Any]]:
    """OUT's pooled record from its members' packs (sweep.json, or cv.json with OUT/output.json); `parse`
    turns arguments into a request (the CLI's parser). Bad or missing members raise before anything is written."""
    try:
        campaign = json.loads((out_dir / CAMPAIGN).read_text())
        names, base = list(campaign["members"]), [str(a) for a in campaign["base_args"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArgumentError(f"{out_dir} is not a campaign submitted with --slurm-array ({out_dir / CAMPAIGN}: "
                            f"{type(exc).__name__}).",
                            fix=["Give the --output-dir of an `nvseg-finetune ... --slurm-array` run."]) from None
    if campaign.get("kind") == "seeds":
        from nvseg_bench.campaign import seeds as sweep

        docs = {s: (_member_doc(seed_dir(out_dir, s) / "output.json", f"seed {s}"), seed_dir(out_dir, s) / "output.json")
                for s in campaign["seeds"]}
        return sweep.write(docs, out_dir)
    return _pool_folds(out_dir, campaign, base, parse)


def _pool_folds(out_dir: Path, campaign: dict[str, Any], base: list[str],
                parse: Callable[[list[str]], Request]) -> tuple[Path, dict[str, Any]]:
    from nvseg_bench.campaign import folds as cv

    chosen, entries = [int(k) for k in campaign["folds"]], list(campaign["entries"])
    docs = {k: (_member_doc(fold_dir(out_dir, k) / "output.json", f"fold {k}"), fold_dir(out_dir, k) / "output.json")
            for k in chosen}
    scratch = out_dir / ".pool-prepare"  # the mapping, forgetting plan and weights the pooled fields read
    try:
        p = prepare(parse([*base, "--datalist", str(fold_dir(out_dir, chosen[0]) / "datalist.json"),
                           "--output-dir", str(scratch), "--dry-run", "--no-preprocess-cache"]))
        cv_doc = cv.assemble(docs, entries, chosen, out_dir, str(campaign.get("source")), p.weights.path,
                             str(campaign.get("cv_checkpoint", "best")))
        parts = [(fold_dir(out_dir, k) / EVAL_PRETRAINED, cv.fold_cases(entries, k)) for k in docs]
        pooling.merge_eval(parts, out_dir / EVAL_PRETRAINED)  # each member scored its own cases' pretrained pass
        req = replace(p.request, output_dir=out_dir, command_line=str(campaign.get("command_line", "")))
        path, errors = cv.write_pack(cv_doc, docs, req, out_dir, 0.0, replace(p, out_dir=out_dir))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if errors:
        raise NvsegError(f"the pooled output.json in {out_dir} does not match the schema (a bug; report it).",
                         evidence=errors[:3], exit_code=EXIT_SCHEMA_BUG)
    return path, cv_doc
