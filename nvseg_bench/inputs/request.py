"""The request: what the caller asked for, built from the parsed command line field by field.

Every parser destination is either a `Request` field of the same name or listed in `CLI_ONLY`; a new
flag that is neither is refused at start-up (and by a test), so no flag is silently dropped on its
way to the resolver. None means "not given", so the fixture card and the preset can fill it.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable

from nvseg_bench.errors import ArgumentError

ALL_FOLDS = "all"  # --folds all: every fold value the datalist holds
NSD_TOLERANCE_MM = 2.0  # --nsd-tolerance-mm by default: the surface Dice tolerance (evidence/boundary.py)
# parser destinations the request does not carry: argparse's own, and the positional merged into dataset_dir
CLI_ONLY = frozenset({"help", "version", "debug", "fixture_or_dataset", "resume",  # --resume: cli.resume_request
                      "save_to"})  # --save-to: cli.execute saves the finished run's record


@dataclass(frozen=True)
class Request:
    """What the caller asked for; None means 'not given' so the card and the preset can fill it."""

    output_dir: Path
    dataset_dir: Path | None = None
    datalist: Path | None = None
    smoke: bool = False
    sanity: bool = False
    auto_seg: bool | None = None  # True --auto-seg, False --no-auto-seg, None: the preset decides
    target_anatomy: str | None = None
    user_label_idx: int | None = None  # the local value --target-anatomy means; None = 1
    label_mapping: str | None = None
    new_classes: list[tuple[int, str]] | None = None  # --new-class VALUE=NAME, in the order given
    patch_size: list[int] | None = None
    epochs: int | None = None
    learning_rate: float | None = None
    cache_rate: float | None = None
    seed: int | None = None
    seeds: list[int] | None = None
    folds: str | None = None  # --folds: "all" or "0,1,2" (parse_folds); None: no cross-validation
    cv_checkpoint: str = "last"  # --cv-checkpoint: each fold's scored checkpoint, "last" epoch or "best" epoch
    parallel: int | None = None  # --parallel N: up to N campaign members at once (campaign/parallel.py)
    slurm_array: bool = False  # --slurm-array: submit the members as a SLURM job array (campaign/slurm_array.py)
    skip_formal_eval: bool = False
    nsd_tolerance_mm: float = NSD_TOLERANCE_MM  # the boundary metrics' surface Dice tolerance
    forgetting_check: str | None = None  # N, class names, "off" (--no-forgetting-check); None: the preset decides
    precision: str | None = None  # fp32 | fp16 | bf16; None: the plan's choice
    pretrained_ckpt: str | None = None
    network_config: Path | None = None
    bundle_dir: Path | None = None
    model: str | None = None  # --model ct|ctmr; None: ct, or what --bundle-dir holds (inputs/family.py)
    modality: str | None = None  # --modality CT_BODY|MRI_BODY|MRI_BRAIN; None: the audit decides (inputs/modality.py)
    mapping_preset: str | None = None  # --mapping-preset NAME from the bundle's label_mappings.json
    nnodes: int | None = None
    node_rank: int | None = None
    rdzv_endpoint: str | None = None
    preprocess_cache: Path | None = None
    no_preprocess_cache: bool = False
    preprocess_cache_max_gb: float | None = None
    allow_cpu: bool = False
    dry_run: bool = False
    phase_timeout: float | None = None
    tracking: list[list[str]] | None = None  # --tracking, each value's items (tracking/choice.py); None: untracked
    resuming: bool = False  # continue the stopped run in output_dir (--resume OUT; resume.py)
    command_line: str = ""  # how the run was started, for output.json


def uncarried(dests: set[str]) -> set[str]:
    """Parser destinations that would be lost on the way to the request."""
    return dests - CLI_ONLY - {f.name for f in fields(Request)}


def from_namespace(args: argparse.Namespace, command_line: str = "") -> Request:
    """The request for parsed arguments: every field of the same name, the positional as dataset_dir."""
    lost = uncarried(set(vars(args)))
    if lost:  # a programming error, caught by tests before it ships
        raise RuntimeError(f"parser destinations {sorted(lost)} have no Request field; add them to request.Request")
    if args.fixture_or_dataset and args.dataset_dir and args.fixture_or_dataset.resolve() != args.dataset_dir.resolve():
        raise ArgumentError(f"two datasets were given: {args.fixture_or_dataset} and --dataset-dir {args.dataset_dir}.",
                            fix=["Give the dataset once, as the first argument or with --dataset-dir."])
    given = {f.name: getattr(args, f.name) for f in fields(Request) if hasattr(args, f.name)}
    given["dataset_dir"] = args.dataset_dir or args.fixture_or_dataset
    return Request(**given, command_line=command_line)


def parse_seeds(text: str) -> list[int]:
    """`0,1,2` -> [0, 1, 2]; refuses repeats and non-integers."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} must be comma-separated whole numbers, e.g. 0,1,2") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"{text!r} must name at least one seed, each once, e.g. 0,1,2")
    return seeds


def parse_folds(text: str) -> str:
    """`all`, or comma-separated distinct integers (`0,1,2,3,4`); returned in the canonical spelling."""
    if text.strip().lower() == ALL_FOLDS:
        return ALL_FOLDS
    try:
        folds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} must be 'all' or comma-separated fold values, e.g. 0,1,2,3,4") from None
    if len(folds) < 2 or len(set(folds)) != len(folds):
        raise argparse.ArgumentTypeError(f"{text!r} must name at least two folds, each once, e.g. 0,1,2,3,4 (or 'all')")
    return ",".join(str(f) for f in folds)


def checked_type(convert: Callable[[str], float], ok: Callable[[float], bool], rule: str) -> Callable[[str], float]:
    """An argparse type that converts, checks, and names the rule when the value breaks it."""

    def parse(text: str) -> float:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} must be {rule}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{text!r} must be {rule}")
        return value

    return parse


positive_float = checked_type(float, lambda v: v > 0, "a number above 0, e.g. 5e-5")


def parse_new_class(text: str) -> tuple[int, str]:
    """`2=bile duct` -> (2, "bile duct"): a local label value above 0 and a name."""
    value, _, name = text.partition("=")
    if not value.strip().isdigit() or int(value) < 1 or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r} must be VALUE=NAME with a label value above 0, e.g. '2=bile duct'")
    return int(value), " ".join(name.split())
