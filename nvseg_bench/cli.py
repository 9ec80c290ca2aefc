"""Command line: `nvseg-finetune [FIXTURE_OR_DATASET] --output-dir OUT [options]`.

Only parsing and printing: the parsed arguments become a Request (request.py, field by field),
run.run owns the flow and the exit code, and this module prints what stops a run before it starts
(bad input: exit 2). `--help` and argument errors answer without importing torch or monai.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Callable, Sequence

from nvseg_bench import PROG, __version__, commands
from nvseg_bench.phases.child import sigterm_as_interrupt
from nvseg_bench.tracking.choice import parse_tracking
from nvseg_bench.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, DiskFullError, NvsegError
from nvseg_bench.stage import resume
from nvseg_bench.store.files import is_disk_full
from nvseg_bench.inputs.request import (NSD_TOLERANCE_MM, Request, checked_type, from_namespace, parse_folds,
                                        parse_new_class, parse_seeds, positive_float)

EXIT_CODES = """`nvseg-finetune fetch-bundle` downloads NVIDIA's pinned NV-Segment-CT bundle (configs, scripts,
weights) ahead of time; `nvseg-finetune fetch-weights` the checkpoint alone; `nvseg-finetune cache`
shows and prunes the preprocessing cache.

exit codes: 0 ran (also when the finetune did not improve), 2 bad input (nothing ran),
3 a phase failed (output.json says which and why), 4 sanity reference checks failed."""


def _patch(text: str) -> list[int]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not JSON; use e.g. '[64,64,64]' or 96") from None
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value] * 3
    if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, int) and v >= 16 for v in value)):
        raise argparse.ArgumentTypeError(f"{text!r} must be three integers >= 16, e.g. '[128,128,128]'")
    return value


_positive_int = checked_type(int, lambda v: v >= 1, "a whole number of at least 1")
_fraction = checked_type(float, lambda v: 0.0 <= v <= 1.0, "between 0 and 1")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Finetune NV-Segment-CT (VISTA3D) on CT NIfTI labels through its MONAI bundle, "
                    "and write evidence of what changed to OUT/output.json.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("fixture_or_dataset", nargs="?", type=Path, metavar="FIXTURE_OR_DATASET",
                        help="dataset dir with imagesTr/ and labelsTr/ (same as --dataset-dir); without one, --smoke "
                             "runs the shipped fixture and --sanity $NVSEG_TASK06_DIR. Without a preset flag, a dir "
                             "whose fixture.json names a preset, or an MSD Task06 folder, picks that preset")
    parser.add_argument("--output-dir", type=Path, metavar="OUT", help="where every output goes (required)")
    parser.add_argument("--resume", type=Path, metavar="OUT",
                        help="continue the stopped run in OUT from its last completed epoch; its recipe is read from "
                             "OUT/output.json, so give no other option")
    mode = parser.add_argument_group("preset")
    mode.add_argument("--smoke", action="store_true", help="shortest workflow check (CPU-sized)")
    mode.add_argument("--sanity", action="store_true", help="MSD Task06 lung-tumor reference recipe")
    data = parser.add_argument_group("data")
    data.add_argument("--dataset-dir", type=Path, metavar="DIR", help="dataset dir (imagesTr/, labelsTr/)")
    data.add_argument("--datalist", type=Path, metavar="JSON",
                      help="{'training': [{'image', 'label', 'fold'}]}; fold 0 validates (default: DATASET/datalist.json, "
                           "else a seed-0 five-fold split)")
    data.add_argument("--target-anatomy", metavar="NAME",
                      help="VISTA3D class that local label value --user-label-idx means, e.g. 'lung tumor'")
    data.add_argument("--user-label-idx", type=_positive_int, metavar="N",
                      help="the local label value --target-anatomy means (default 1); checked against the labels")
    data.add_argument("--label-mapping", metavar="JSON", help="[[local, global], ...], e.g. '[[1, 23]]'; wins over --target-anatomy")
    data.add_argument("--new-class", dest="new_classes", action="append", type=parse_new_class, metavar="VALUE=NAME",
                      help="a class VISTA3D lacks: local label VALUE becomes NAME on the lowest unused id in 133..254 "
                           "(or the id --label-mapping gives it); repeatable")
    prompts = data.add_mutually_exclusive_group()
    prompts.add_argument("--auto-seg", action="store_true", default=None,
                         help="train class prompts only (no point prompts); --smoke and --sanity do this already")
    prompts.add_argument("--no-auto-seg", dest="auto_seg", action="store_false",
                         help="train class and point prompts, also under --smoke or --sanity")
    recipe = parser.add_argument_group("recipe (caller values win over the fixture card and the preset)")
    recipe.add_argument("--patch-size", type=_patch, metavar="JSON", help="e.g. '[128,128,128]'")
    recipe.add_argument("--epochs", type=_positive_int)
    recipe.add_argument("--learning-rate", type=positive_float, metavar="LR")
    recipe.add_argument("--cache-rate", type=_fraction, metavar="RATE", help="share of training cases cached in RAM")
    recipe.add_argument("--seed", type=int, help="the bundle's set_determinism seed (default: the bundle's, 0); "
                        "vary it to measure run-to-run noise")
    recipe.add_argument("--seeds", type=parse_seeds, metavar="LIST",
                        help="a seed sweep, e.g. 0,1,2: one finetune per seed into OUT/seed-S, one shared pretrained "
                             "evaluation, the gain's spread in OUT/sweep.json")
    recipe.add_argument("--folds", type=parse_folds, metavar="LIST",
                        help="cross-validation, 'all' or e.g. 0,1,2,3,4: one finetune per fold into OUT/fold-K, each "
                             "validating on its fold, one shared pretrained evaluation, the pooled verdict over every "
                             "case in OUT/cv.json and OUT/output.json")
    recipe.add_argument("--cv-checkpoint", choices=("last", "best"), default="last",
                        help="with --folds: which of each fold's checkpoints the pooled score and the recommendation "
                             "use: 'last' (default) the final epoch's weights, which the held-out cases did not choose; "
                             "'best' the best validation epoch, chosen on the very cases it is scored on (the best "
                             "epoch's pooled score and its optimism over the last are reported either way)")
    recipe.add_argument("--parallel", type=_positive_int, metavar="N",
                        help="with --folds or --seeds: up to N members at once, each with its share of the visible "
                             "GPUs (or of the CPU cores); the pooled figures are a sequential run's")
    recipe.add_argument("--slurm-array", action="store_true",
                        help="with --folds or --seeds: submit the members as one SLURM job array (sbatch) and the "
                             "pooling as a job that waits for it; prints the job ids (nvseg-finetune pool OUT pools "
                             "by hand)")
    recipe.add_argument("--skip-formal-eval", action="store_true", help="skip the two original-spacing eval phases")
    recipe.add_argument("--nsd-tolerance-mm", type=positive_float, default=NSD_TOLERANCE_MM, metavar="MM",
                        help="tolerance of the normalised surface Dice every formal evaluation reports beside Dice, "
                             f"with HD95 (default {NSD_TOLERANCE_MM:g} mm)")
    forgetting = recipe.add_mutually_exclusive_group()
    forgetting.add_argument("--forgetting-check", nargs="?", const="5", metavar="N|NAMES",
                            help="score how far the finetune changed N other VISTA3D classes (default 5, those the "
                                 "pretrained model finds most of) or the named ones ('liver,aorta'); on by default "
                                 "for --sanity and GPU runs")
    forgetting.add_argument("--no-forgetting-check", dest="forgetting_check", action="store_const", const="off",
                            help="skip the forgetting check")
    recipe.add_argument("--precision", choices=["fp32", "fp16", "bf16"],
                        help="training and evaluation arithmetic (default: fp16 autocast on a CUDA GPU, fp32 on the CPU)")
    model = parser.add_argument_group("model and bundle")
    model.add_argument("--model", choices=["ct", "ctmr"],
                       help="NV-Segment-CT (ct, default: CT only) or NV-Segment-CTMR (ctmr: CT, body and brain MRI; "
                            "non-commercial licence); a --bundle-dir's own files decide")
    model.add_argument("--modality", choices=["CT_BODY", "MRI_BODY", "MRI_BRAIN"],
                       help="the images' modality (default CT_BODY for CT images; MR images on --model ctmr need it)")
    data.add_argument("--mapping-preset", metavar="NAME",
                      help="a dataset's mapping from the bundle's configs/label_mappings.json, e.g. Task06 "
                           "(`nvseg-finetune presets` lists them)")
    model.add_argument("--pretrained-ckpt", metavar="PATH", help="start from this checkpoint")
    model.add_argument("--network-config", type=Path, metavar="JSON", help="config file that sets network_def")
    model.add_argument("--bundle-dir", type=Path, metavar="DIR",
                       help="a VISTA3D bundle (default: NVIDIA's nvidia/NV-Segment-CT at the pinned revision, from the "
                            "Hugging Face cache; --smoke: this project's offline stand-in bundle/)")
    multi = parser.add_argument_group("several machines (passed to torchrun; NPROC_PER_NODE sets processes per node)")
    multi.add_argument("--nnodes", type=_positive_int, help="number of machines taking part")
    multi.add_argument("--node-rank", type=int, metavar="RANK", help="this machine's rank, 0..nnodes-1")
    multi.add_argument("--rdzv-endpoint", metavar="HOST:PORT", help="rendezvous address of node 0")
    cache = parser.add_argument_group("preprocessing cache (each case preprocessed once, for every phase and later runs)")
    cache.add_argument("--preprocess-cache", type=Path, metavar="DIR",
                       help="where (default: $XDG_CACHE_HOME/nvseg-bench, else ~/.cache/nvseg-bench)")
    cache.add_argument("--no-preprocess-cache", action="store_true", help="preprocess every case in every phase")
    cache.add_argument("--preprocess-cache-max-gb", type=positive_float, metavar="GB",
                       help="cap on the cache dir; the least recently used keys go first (default: a quarter of the "
                            "free disk plus what the cache holds); see `nvseg-finetune cache`")
    parser.add_argument("--allow-cpu", action="store_true", help="let --sanity run without a CUDA GPU")
    parser.add_argument("--dry-run", action="store_true",
                        help="check inputs, plan and stage configs, print the phase commands; start no phase")
    parser.add_argument("--phase-timeout", type=positive_float, metavar="SECONDS", help="stop a phase that runs longer")
    parser.add_argument("--tracking", action="append", type=parse_tracking, metavar="mlflow[=URI]|tensorboard",
                        help="log the finetune to an experiment tracker (repeatable or comma-separated): mlflow into "
                             "URI, else $MLFLOW_TRACKING_URI, else OUT/../mlruns (needs the [mlflow] extra); "
                             "tensorboard into OUT/train (needs the [tensorboard] extra); see docs/usage.md")
    parser.add_argument("--save-to", metavar="STORE",
                        help="after the run, save its record in this history store (a folder or file:///abs/dir; "
                             "`nvseg-finetune history STORE` lists them)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def to_request(args: argparse.Namespace, argv: Sequence[str]) -> Request:
    return from_namespace(args, command_line=shlex.join([PROG, *argv]))


def execute(args: argparse.Namespace, argv: Sequence[str]) -> int:
    req = resume_request(args, argv) if args.resume else to_request(args, argv)
    if args.save_to:
        commands.history_store(args.save_to)  # a store that cannot be used is refused before the run, not after
    if req.folds or req.seeds or req.parallel or req.slurm_array:
        from nvseg_bench.campaign import run_campaign  # the run's modules load after parsing: --help stays fast

        code = run_campaign(req, Console())
    else:
        from nvseg_bench.run import run

        code = run(req, Console())
    if args.save_to:
        saved = commands.save_to(args.save_to, req.output_dir)
        print("\n".join(f"{PROG}: saved {path.stem} to {path.parent}" for path in saved) or
              f"{PROG}: --save-to: {req.output_dir} has no output.json; nothing was saved")
    return code


def _err(text: str) -> None:
    print(text, file=sys.stderr)


class Console:
    """What a run prints: the plan before any phase, the outcome after them (run.Show, sweep.SweepShow)."""

    def __init__(self, say: Callable[[str], None] = print, warnings_shown: int = 10) -> None:
        self.say, self.warnings_shown = say, warnings_shown

    def plan(self, p) -> None:
        """The plan: preset, every choice with its reason, anatomy warnings, and a dry run's commands."""
        self.say(f"{PROG}: {p.resolved.preset} run of {p.dataset_dir} -> {p.out_dir}")
        for line in p.plan.rationale:
            self.say(f"  plan  {line}")
        warnings = p.audit.get("anatomy_warnings", [])
        for line in warnings[: self.warnings_shown]:  # the run goes on; output.json keeps the full list
            self.say(f"  warning {line}")
        if len(warnings) > self.warnings_shown:
            self.say(f"  warning and {len(warnings) - self.warnings_shown} more "
                     "(input.dataset_audit.anatomy_warnings in output.json)")
        if p.cache is None and p.cache_note and not p.request.no_preprocess_cache:
            _err(f"{PROG}: warning: {p.cache_note}")
        if p.request.dry_run:
            for name, command in p.commands.items():
                paths = os.pathsep.join([str(p.bundle_dir), str(p.staged.config_dir)])
                env = f"PYTHONPATH={shlex.quote(paths)} PYTHONDONTWRITEBYTECODE=1"
                self.say(f"  phase {name}: (cd {shlex.quote(str(p.out_dir))} && {env} {shlex.join(command)})")

    def outcome(self, outcome) -> None:
        doc = outcome.doc
        self._schema(outcome.schema_errors)
        self.say(f"{PROG}: {doc['headline']}")
        out = doc["output"]
        for warning in (out.get("gain_warning"), *out.get("class_warnings", []), out.get("loss_warning")):
            if warning:
                self.say(f"{PROG}: warning: {warning}")
        self.say(f"  output.json: {outcome.path}")
        self.say(f"  recommended checkpoint: {doc['output']['recommended_ckpt']}")
        if out.get("boundary"):
            from nvseg_bench.evidence.boundary import summary_line  # numpy: kept off the --help path

            self.say(f"  boundary: {summary_line(out['boundary'])}")
        if out.get("forgetting"):
            self.say(f"  forgetting check: {forgetting_line(out['forgetting'])}")
        self.say(f"  preprocess cache: {cache_line(doc['runtime']['preprocess_cache'])}")
        if "error" in doc:
            _err(f"  {doc['error']['message']}")

    def tracked(self, tracker, warnings: list[str]) -> None:
        """Where the run was tracked and how to open it; a store that failed is a warning, the run stands."""
        block = tracker.block() or {}
        run = block.get("mlflow") or {}
        if run.get("run_id"):
            local = run["uri"].startswith(("file:", "sqlite:"))
            self.say(f"  mlflow: run {run['run_name']} ({run['run_id']}) in {run['uri']}"
                     + (f"; open it with: mlflow ui --backend-store-uri {shlex.quote(run['uri'])}" if local else ""))
        if block.get("tensorboard"):
            self.say(f"  tensorboard: tensorboard --logdir {shlex.quote(block['tensorboard']['dir'])}")
        for warning in warnings:
            _err(f"{PROG}: warning: {warning}")

    def seed_started(self, seed: int, index: int, total: int) -> None:
        self.say(f"{PROG}: sweep seed {seed} ({index} of {total})")

    def seed_done(self, seed: int, outcome) -> None:
        self._member_done(f"seed {seed}", outcome)

    def fold_started(self, fold: int, index: int, total: int) -> None:
        self.say(f"{PROG}: cross-validation fold {fold} ({index} of {total})")

    def fold_done(self, fold: int, outcome) -> None:
        self._member_done(f"fold {fold}", outcome)

    def submitted(self, lines: list[str]) -> None:
        self.say("\n".join(f"{PROG}: {line}" for line in lines))

    def member_failed(self, name: str, why: str) -> None:
        self.say(f"{PROG}: {name} failed: {why} (the other members are kept)")

    def _member_done(self, name: str, outcome) -> None:
        self._schema(outcome.schema_errors)
        self.say(f"{PROG}: {name}: {outcome.doc['headline']}\n  output.json: {outcome.path}")
        if outcome.doc["output"].get("gain_warning"):
            self.say(f"{PROG}: {name}: warning: {outcome.doc['output']['gain_warning']}")

    def cv_done(self, cv: dict, path: Path) -> None:
        self.say(f"{PROG}: {cv['headline']}\n  {cv['decision_reason']}\n  {path.name}: {path}")
        self.say(f"  recommended checkpoint: {cv['recommended_ckpt']}")

    def sweep_done(self, sweep: dict, path: Path) -> None:
        from nvseg_bench.campaign.seeds import sweep_line

        self.say(f"{PROG}: {sweep_line(sweep)}\n  sweep.json: {path}")

    @staticmethod
    def _schema(errors: list[str]) -> None:
        if errors:
            _err(f"{PROG}: output.json does not match its schema ({len(errors)} problems, first: {errors[0]}); "
                 "this is a bug in nvseg-bench, please report it.")


def forgetting_line(block: dict) -> str:
    scored = {k: v for k, v in block["classes"].items() if v is not None}
    said = ", ".join(f"{k} {v:.3f}" for k, v in sorted(scored.items(), key=lambda kv: kv[1]))
    return f"agreement with the pretrained model: {said or 'no class found by either checkpoint'}"


def cache_line(block: dict) -> str:
    if not block["enabled"]:
        return f"off ({block['note']})"
    return (f"{block['hits']} hits, {block['misses']} misses, {block['rebuilt_bad_entries']} bad entries rebuilt, "
            f"{block['bytes'] / 2**20:.1f} MiB in {block['dir']}")


def resume_request(given: argparse.Namespace, argv: Sequence[str]) -> Request:
    """--resume OUT: the stopped run's request (stage/resume.py reads it), parsed with this parser."""
    return resume.stopped_request(given.resume, argv, dataset_given=given.fixture_or_dataset,
                                  phase_timeout=given.phase_timeout, parse=build_parser().parse_args, build=to_request)


def disk_full(exc: BaseException, writing: Path | None) -> DiskFullError | None:
    """A full disk met outside the atomic writer (a phase's file, a label map): the user's to fix, not a bug."""
    if not (isinstance(exc, OSError) and is_disk_full(exc)) or not (exc.filename or writing):
        return None
    return DiskFullError.writing(Path(exc.filename) if exc.filename else writing)


def pool_command(argv: Sequence[str]) -> int:
    """`nvseg-finetune pool OUT`: pool the members of a --slurm-array campaign (campaign/slurm_array.py)."""
    parser = argparse.ArgumentParser(prog=f"{PROG} pool", description="pool the finished members of a campaign "
                                     "submitted with --slurm-array into OUT/cv.json (and OUT/output.json) or OUT/sweep.json")
    parser.add_argument("out", type=Path, metavar="OUT", help="the campaign's --output-dir")
    from nvseg_bench.campaign.slurm_array import pool

    path, _ = pool(parser.parse_args(argv).out.resolve(), lambda args: to_request(build_parser().parse_args(args), args))
    print(f"{PROG}: pooled into {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    handlers = commands.SUBCOMMANDS | {"pool": pool_command}
    if argv[:1] and argv[0] in handlers:
        try:
            return handlers[argv[0]](argv[1:])
        except NvsegError as exc:
            print(exc.render(PROG), file=sys.stderr)
            return exc.exit_code
        except OSError as exc:
            if (full := disk_full(exc, None)) is None:
                raise
            print(full.render(PROG), file=sys.stderr)
            return full.exit_code
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.resume is None and args.output_dir is None:
        parser.error("the following arguments are required: --output-dir (or --resume OUT)")
    try:
        with sigterm_as_interrupt():
            return execute(args, argv)
    except NvsegError as exc:
        if args.debug:
            raise
        print(exc.render(PROG), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted (Ctrl-C or SIGTERM) before any phase started; nothing ran.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: say so plainly, keep the traceback for --debug
        if args.debug:
            raise
        if (full := disk_full(exc, Path(args.output_dir or args.resume) / "output.json")) is not None:
            print(full.render(PROG), file=sys.stderr)
            return full.exit_code
        print(f"{PROG}: internal error: {type(exc).__name__}: {exc}\n  Rerun with --debug for the traceback "
              "and report it.", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    raise SystemExit(main())
