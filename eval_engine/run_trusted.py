"""python -m eval_engine.run_trusted: audit an nvseg-bench evidence pack on the CPU.

    python -m eval_engine.run_trusted [PROJECT_OR_SKILL_DIR] --fixture DIR --out OUT
        runs the smoke finetune on DIR through the project's CLI (a subprocess), then audits it;
    python -m eval_engine.run_trusted --pack RUN_DIR --out OUT
        audits an existing pack and never re-runs training or inference.

Writes OUT/trust_summary.json and OUT/trust_summary.md. Exit 0 passed or warn, 1 failed, 2 bad
arguments.
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

from . import (VERSION, claims, cv_check, forgetting_check, gain_check, integrity, per_class, plausibility, provenance,
               recompute)
from .findings import Finding, failed, passed, verdict
from .pack import PackError, load_pack

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


def audit(pack_dir: Path, schema: Path = claims.SCHEMA) -> tuple[list[Finding], dict[str, str]]:
    pack = load_pack(pack_dir)
    findings = [integrity.check_manifest(pack), *integrity.check_inputs(pack), integrity.check_escaping_paths(pack),
                claims.check_schema(pack, schema), *recompute.check_checkpoints(pack),
                *recompute.recompute_formal(pack, "eval_pretrained", "formal_pretrained_val_dice"),
                *recompute.recompute_formal(pack, "eval_finetuned", "formal_finetuned_val_dice"),
                claims.check_trajectory(pack), claims.check_decision(pack), claims.check_dataset_audit(pack),
                plausibility.check_anatomy(pack), gain_check.check_gain_stats(pack), cv_check.check_cv(pack),
                per_class.check_class_gains(pack), forgetting_check.check_forgetting(pack), claims.check_references(pack),
                claims.check_environment(pack), provenance.check_bundle(pack)]
    return findings, pack.read


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


def write_summary(out: Path, pack_dir: Path, mode: str, findings: list[Finding], read: dict[str, str],
                  seconds: float) -> dict:
    summary = {
        "verdict": verdict(findings),
        "counts": {s: sum(f.status == s for f in findings) for s in ("pass", "fail", "warn", "skipped")},
        "pack": str(pack_dir.resolve()),
        "mode": mode,
        "verifier": {"name": "eval_engine.run_trusted", "version": VERSION},
        "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(seconds, 2),
        "findings": [f.to_json() for f in findings],
        "files_read_sha256": read,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "trust_summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    lines = [f"# Trust summary: {summary['verdict']}", "",
             f"Pack `{summary['pack']}` ({mode} mode), verifier {VERSION}, {summary['time']}, {seconds:.1f} s.", "",
             "| check | status | detail |", "| --- | --- | --- |"]
    lines += [f"| {f.name} | {f.status} | {f.detail.replace('|', '/')} |" for f in findings]
    (out / "trust_summary.md").write_text("\n".join(lines) + "\n")
    return summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m {PROG}", description="Audit an nvseg-bench evidence pack on the CPU.")
    parser.add_argument("project", nargs="?", type=Path, default=Path("."), metavar="PROJECT_OR_SKILL_DIR",
                        help="the project whose scripts/run_finetune.py makes the pack (fixture mode; default .)")
    parser.add_argument("--fixture", type=Path, metavar="DIR", help="run the smoke finetune on DIR, then audit it")
    parser.add_argument("--pack", type=Path, metavar="RUN_DIR", help="audit this existing run directory")
    parser.add_argument("--out", type=Path, required=True, metavar="OUT", help="where trust_summary.* go")
    return parser


def _refuse(message: str, fix: str) -> int:
    print(f"{PROG}: {message}\n  {fix}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if bool(args.fixture) == bool(args.pack):
        return _refuse("give exactly one of --fixture DIR and --pack RUN_DIR.",
                       "--fixture runs the smoke finetune and audits it; --pack audits a run that exists.")
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
        pack_dir, run_finding = run_fixture(args.project.resolve(), entry, args.fixture, args.out)
        head.append(run_finding)
    else:
        pack_dir = args.pack
        if not pack_dir.is_dir():
            return _refuse(f"--pack {pack_dir} is not a directory.", "Pass the --output-dir of an nvseg-finetune run.")
    try:
        findings, read = audit(pack_dir, schema)
    except PackError as exc:
        return _refuse(str(exc), "A pack is the output dir of one run: output.json, manifest.json and what they list.")
    summary = write_summary(args.out, pack_dir, "fixture" if args.fixture else "pack", head + findings, read,
                            time.monotonic() - started)
    for f in head + findings:
        print(f"  {f.status:7s} {f.name}: {f.detail}")
    print(f"{PROG}: {summary['verdict']} ({summary['counts']}); {args.out / 'trust_summary.json'}")
    return 1 if summary["verdict"] == "failed" else 0


if __name__ == "__main__":
    raise SystemExit(main())
