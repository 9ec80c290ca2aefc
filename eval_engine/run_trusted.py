"""python -m eval_engine.run_trusted: audit an nvseg-bench evidence pack on the CPU.

    python -m eval_engine.run_trusted [PROJECT_OR_SKILL_DIR] --fixture DIR --out OUT [--datalist F] [--pretrained-ckpt C]
        runs the smoke finetune on DIR through the project's CLI (a subprocess), then audits it
        with DIR as the dataset;
    python -m eval_engine.run_trusted --pack RUN_DIR --out OUT [--dataset-dir D] [--datalist F] [--pretrained-ckpt C]
        audits an existing pack and never re-runs training or inference.

The labels, the validation cases and the pretrained weights come from these arguments, never from the
pack (inputs.py); without them the verifier reads what the pack names and says so ("labels as the
pack names them"). Writes only OUT/trust_summary.json and OUT/trust_summary.md (summary.py). Exit 0
passed or warn, 1 failed or unverified (a headline claim could not be re-derived), 2 bad arguments.
See docs/trust.md for what is trusted and the attacks this is tested against.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

from . import (VERSION, boundary_check, claims, cv_check, forgetting_check, gain_check, inputs, integrity,
               per_class, plausibility, provenance, recompute, summary, test_check)
from .findings import STATUSES, Finding, failed, passed, verdict
from .pack import Pack, PackError, load_pack

# the findings that read the labels or the validation cases: each says so when the pack named them
LABEL_FINDINGS = ("integrity.dataset", "formal_dice.", "per_class.", "forgetting", "boundary")

PROG = "eval_engine.run_trusted"
ENTRYPOINT = Path("scripts") / "run_finetune.py"  # when the skill dir has no manifest
MANIFEST = "skill_manifest.yaml"


def skill_paths(skill_dir: Path) -> tuple[Path, Path]:
    """The entrypoint and output schema a skill declares in skill_manifest.yaml (else this project's)."""
    manifest = skill_dir / MANIFEST
    if not manifest.is_file():
        return skill_dir / ENTRYPOINT, claims.SCHEMA
    import yaml

    data = yaml.safe_load(manifest.read_text())
    return skill_dir / data["runtime"]["entrypoint"], skill_dir / data["outputs"]["result_json"]["schema"]


def audit(pack_dir: Path, schema: Path = claims.SCHEMA, dataset_dir: Path | None = None, datalist: Path | None = None,
          pretrained: Path | None = None) -> tuple[list[Finding], dict[str, str], inputs.Inputs]:
    """Every check on the pack, with the labels and weights from the caller's arguments where given."""
    pack = load_pack(pack_dir)
    given = inputs.choose(pack, dataset_dir, datalist, pretrained)
    formal = [*recompute.recompute_formal(pack, "eval_pretrained", "formal_pretrained_val_dice", given),
              *recompute.recompute_formal(pack, "eval_finetuned", "formal_finetuned_val_dice", given),
              *test_check.check_formal(pack, given)]  # the test split's two phases, when the run has them
    trajectory = claims.check_trajectory(pack)
    findings = [integrity.check_manifest(pack), integrity.check_links(pack), inputs.check_pretrained(pack, given),
                inputs.check_dataset(pack, given), integrity.check_escaping_paths(pack), claims.check_schema(pack, schema),
                *recompute.check_checkpoints(pack, given), *formal, trajectory,
                claims.check_decision(pack, _decision_basis_checked(pack, formal, trajectory)),
                claims.check_dataset_audit(pack), plausibility.check_anatomy(pack), gain_check.check_gain_stats(pack),
                test_check.check_test_split(pack), cv_check.check_cv(pack), per_class.check_class_gains(pack),
                *boundary_check.check_boundary(pack, given), forgetting_check.check_forgetting(pack, given),
                claims.check_references(pack), claims.check_environment(pack), provenance.check_bundle(pack)]
    for f in findings:
        if f.name.startswith(LABEL_FINDINGS) and f.status != "skipped":
            f.detail = given.labels_said(f.detail)
    return findings, pack.read, given


def _decision_basis_checked(pack: Pack, formal: list[Finding], trajectory: Finding) -> bool:
    """The figures the keep decision rests on were re-derived (found right or wrong: a wrong one fails by
    itself): formal Dice of both phases, else the training trace."""
    if (pack.output.get("output") or {}).get("formal_eval_enabled"):
        return all(f.status in ("pass", "fail") for f in formal if f.name.startswith("formal_dice."))
    return trajectory.status in ("pass", "fail")


def run_fixture(project: Path, entry: Path, fixture: Path, out: Path) -> tuple[Path, Finding]:
    pack = out / "pack"
    cmd = [sys.executable, str(entry), str(fixture.resolve()), "--smoke", "--output-dir", str(pack)]
    print(f"{PROG}: running the smoke finetune: {' '.join(cmd)}", flush=True)
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=project)
    seconds = round(time.monotonic() - started, 1)
    status = passed if proc.returncode == 0 else failed
    return pack, status("fixture_run", f"the smoke finetune exited {proc.returncode} after {seconds} s",
                        return_code=proc.returncode, seconds=seconds, command=cmd)


def verdict_line(findings: list[Finding], given: inputs.Inputs) -> str:
    said, caveats = verdict(findings), given.caveats
    open_claims = [f.name for f in findings if f.status == "unverified"]
    line = f"verdict {said}" + (f" ({'; '.join(caveats)})" if caveats else "")
    return line + (f"; not re-derived: {', '.join(open_claims)}" if open_claims else "")


def write_summary(out: Path, pack_dir: Path, mode: str, findings: list[Finding], read: dict[str, str],
                  seconds: float, given: inputs.Inputs) -> dict:
    doc = {
        "verdict": verdict(findings),
        "verdict_line": verdict_line(findings, given),
        "counts": {s: sum(f.status == s for f in findings) for s in STATUSES},
        "pack": str(pack_dir.resolve()),
        "mode": mode,
        "inputs": given.to_json(),
        "verifier": {"name": "eval_engine.run_trusted", "version": VERSION},
        "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(seconds, 2),
        "findings": [f.to_json() for f in findings],
        "files_read_sha256": read,
    }
    summary.write(out, doc)
    return doc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m {PROG}", description="Audit an nvseg-bench evidence pack on the CPU.")
    parser.add_argument("project", nargs="?", type=Path, default=Path("."), metavar="PROJECT_OR_SKILL_DIR",
                        help="the project whose scripts/run_finetune.py makes the pack (fixture mode; default .)")
    parser.add_argument("--fixture", type=Path, metavar="DIR", help="run the smoke finetune on DIR, then audit it")
    parser.add_argument("--pack", type=Path, metavar="RUN_DIR", help="audit this existing run directory")
    parser.add_argument("--out", type=Path, required=True, metavar="OUT", help="where trust_summary.* go (the only writes)")
    parser.add_argument("--dataset-dir", type=Path, metavar="D", help="the dataset whose labels the pack is scored "
                        "against (pack mode; default: the one the pack names, said so in every finding)")
    parser.add_argument("--datalist", type=Path, metavar="F", help="the datalist whose fold 0 are the validation "
                        "cases (default: the one the pack names, said so unless it lies in D)")
    parser.add_argument("--pretrained-ckpt", type=Path, metavar="C", help="the pretrained weights the finetuned "
                        "checkpoint is compared with (default: the file the pack names, said so)")
    return parser


def _refuse(message: str, fix: str) -> int:
    print(f"{PROG}: {message}\n  {fix}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if bool(args.fixture) == bool(args.pack):
        return _refuse("give exactly one of --fixture DIR and --pack RUN_DIR.",
                       "--fixture runs the smoke finetune and audits it; --pack audits a run that exists.")
    refused = _bad_inputs(args)
    if refused:
        return _refuse(*refused)
    try:
        summary.check_out(args.out)
    except summary.OutputRefused as exc:
        return _refuse(str(exc), "Pass --out a real folder (or one to be made) that is not a link.")
    started = time.monotonic()
    head: list[Finding] = []
    try:
        entry, schema = skill_paths(args.project.resolve())
    except (KeyError, TypeError, ValueError) as exc:
        return _refuse(f"{args.project / MANIFEST} lacks runtime.entrypoint or outputs.result_json.schema ({exc}).",
                       "Fix the manifest; it must validate against nvseg_bench/schema/skill_manifest.schema.json.")
    if args.fixture:
        if not entry.is_file():
            return _refuse(f"the skill's entrypoint {entry} does not exist.", "Pass the project or skill dir that holds it.")
        if not args.fixture.is_dir():
            return _refuse(f"--fixture {args.fixture} is not a directory.", "Pass a dataset dir such as fixtures/spleen_micro.")
        if (args.out / "pack").is_symlink():
            return _refuse(f"{args.out / 'pack'} is a symbolic link; the smoke run's pack is written into no link.",
                           "Remove the link, or pass another --out.")
        pack_dir, run_finding = run_fixture(args.project.resolve(), entry, args.fixture, args.out)
        head.append(run_finding)
    else:
        pack_dir = args.pack
        if not pack_dir.is_dir():
            return _refuse(f"--pack {pack_dir} is not a directory.", "Pass the --output-dir of an nvseg-finetune run.")
    try:
        findings, read, given = audit(pack_dir, schema, args.fixture or args.dataset_dir, args.datalist,
                                      args.pretrained_ckpt)
    except PackError as exc:
        return _refuse(str(exc), "A pack is the output dir of one run: output.json, manifest.json and what they list.")
    try:
        doc = write_summary(args.out, pack_dir, "fixture" if args.fixture else "pack", head + findings, read,
                            time.monotonic() - started, given)
    except summary.OutputRefused as exc:
        return _refuse(str(exc), "Remove the link, or pass another --out.")
    for f in head + findings:
        print(f"  {f.status:10s} {f.name}: {f.detail}")
    print(f"{PROG}: {doc['verdict_line']} ({doc['counts']}); {args.out / summary.JSON_NAME}")
    return 1 if doc["verdict"] in ("failed", "unverified") else 0


def _bad_inputs(args: argparse.Namespace) -> tuple[str, str] | None:
    """Why the trusted inputs cannot be used as given (None: they can)."""
    if args.fixture and args.dataset_dir:
        return ("--dataset-dir is for --pack mode; in --fixture mode DIR is the dataset.", "Drop --dataset-dir.")
    for flag, path, kind in (("--dataset-dir", args.dataset_dir, "dir"), ("--datalist", args.datalist, "file"),
                             ("--pretrained-ckpt", args.pretrained_ckpt, "file")):
        if path is not None and not (path.is_dir() if kind == "dir" else path.is_file()):
            return (f"{flag} {path} is not a {'directory' if kind == 'dir' else 'file'}.",
                    f"Pass the {flag[2:].replace('-', ' ')} the run was made with (a copy with the same content will do).")
    return None


if __name__ == "__main__":
    raise SystemExit(main())
