"""Harness settings: command-line options first, then environment, then the ini file.

This module owns the options of the runs themselves (which data, which bundle, where the evidence
goes, what the CLI gets) and the helpers every feature uses to add and read its own options; each
gate feature (harness/feature.py) adds and reads its options in its own module.
`HarnessOptions.from_config` puts them together into one value before any test runs; a bad value is
a usage error that names the option and the fix.
"""
from __future__ import annotations

import argparse
import difflib
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import pytest

from nvseg_bench import paths
from nvseg_bench.history.regression import Threshold
from nvseg_bench.inputs.family import MODALITIES, MODELS

MODEL_NAMES = tuple(MODELS)

GROUP = "nvseg-bench (finetune runs as fixtures)"
MIN_AGREEMENT = 0.8  # the forgetting gate's default bound (docs/harness.md); HarnessOptions' default
TASK06_ENV = paths.TASK06_ENV
# (option, ini key, help); paths are resolved against the invocation dir, ini paths against the rootdir
PATH_OPTIONS = [
    ("task06", f"MSD Task06_Lung dir for the sanity run (also ${TASK06_ENV})"),
    ("dataset", "your dataset dir (imagesTr/, labelsTr/) for the user run"),
    ("datalist", "datalist JSON for the user run (fold 0 validates)"),
    ("pretrained-ckpt", "checkpoint the user run starts from"),
    ("network-config", "config file that sets network_def, for the user run"),
    ("bundle-dir", "VISTA3D bundle for every run (default: the smoke run uses this project's offline stand-in "
                   "bundle; sanity and user runs NVIDIA's nvidia/NV-Segment-CT from the Hugging Face cache)"),
    ("out", "evidence root: runs are written under DIR/<run>-<key> (default: pytest's cache dir)"),
]
TEXT_OPTIONS = [
    ("target-anatomy", "VISTA3D class that local label 1 means, for the user run"),
    ("label-mapping", "'[[local, global], ...]' for the user run"),
    ("seeds", "a seed sweep for every run, e.g. 0,1,2 (nvseg-finetune --seeds); gates judge the sweep's representative seed"),
    ("folds", "cross-validation for every run, 'all' or e.g. 0,1,2,3,4 (nvseg-finetune --folds); gates judge the "
              "pooled figures over every case"),
    ("args", "other nvseg-finetune flags for every run, e.g. \"--seed 1 --phase-timeout 3600\""),
    ("model", "the model of every run, ct or ctmr (nvseg-finetune --model; a --nvseg-bundle-dir's own files decide)"),
    ("modality", "the images' modality for every run, CT_BODY, MRI_BODY or MRI_BRAIN (nvseg-finetune --modality)"),
    ("tracking", "log every run this session starts to mlflow[=URI] and/or tensorboard (nvseg-finetune --tracking); "
                 "not part of the cache key: a run served from the cache is not logged again (--nvseg-rerun logs it)"),
]
# the harness owns these: a run's identity and where it writes
RESERVED = {"--output-dir", "--smoke", "--sanity", "--dry-run", "--dataset-dir", "--help", "-h", "--version"}


def add_options(parser: pytest.Parser) -> pytest.OptionGroup:
    """The runs' own options; returns the group the features add theirs to."""
    group = parser.getgroup("nvseg", GROUP)
    group.addoption("--gpu", action="store_true", help="allow runs on a CUDA GPU (without it every run sees no GPU)")
    group.addoption("--nvseg-rerun", action="store_true", help="ignore cached runs and run again")
    for name, text in PATH_OPTIONS:
        add_value_option(group, parser, name, text, "DIR")
    for name, text in TEXT_OPTIONS:
        add_value_option(group, parser, name, text, "VALUE")
    parser.addini("nvseg_gpu", "default for --gpu", type="bool", default=False)
    return group


def option_dest(name: str) -> str:
    """`--nvseg-NAME`'s dest, which is also its ini key: nvseg_NAME with underscores."""
    return "nvseg_" + name.replace("-", "_")


def add_value_option(group: pytest.OptionGroup, parser: pytest.Parser, name: str, text: str, metavar: str) -> None:
    """`--nvseg-NAME VALUE` and its ini key `nvseg_NAME`."""
    dest = option_dest(name)
    group.addoption(f"--nvseg-{name}", dest=dest, metavar=metavar, help=text)
    parser.addini(dest, f"default for --nvseg-{name}", type="string", default="")


def add_switch(group: pytest.OptionGroup, parser: pytest.Parser, name: str, text: str) -> None:
    """`--nvseg-NAME` (a switch) and its ini key `nvseg_NAME`."""
    dest = option_dest(name)
    group.addoption(f"--nvseg-{name}", dest=dest, action="store_true", help=text)
    parser.addini(dest, f"default for --nvseg-{name}", type="bool", default=False)


def switch_on(config: pytest.Config, name: str) -> bool:
    """A switch from the command line, else its ini key."""
    dest = option_dest(name)
    return bool(config.getoption(dest) or config.getini(dest))


def option_value(config: pytest.Config, name: str) -> tuple[str | None, Path]:
    """(value, base dir for a relative path) from the option, else env (task06), else the ini key."""
    dest = option_dest(name)
    given = config.getoption(dest)
    if given:
        return given, config.invocation_params.dir
    if name == "task06" and os.environ.get(TASK06_ENV):
        return os.environ[TASK06_ENV], config.invocation_params.dir
    ini = config.getini(dest)
    return (ini or None), config.rootpath


def option_path(config: pytest.Config, name: str) -> Path | None:
    value, base = option_value(config, name)
    if value is None:
        return None
    return (base / Path(value).expanduser()).resolve()


def check_rootdir(config: pytest.Config, path_options: set[str]) -> None:
    """Refuse `--nvseg-dataset DIR` as two words when it moved pytest's rootdir.

    pytest picks its rootdir and ini file before plugins load, so it reads the DIR of a two-word
    plugin option as a test path. Left alone, the project's ini file is ignored and the cache
    (with the run evidence) lands next to the data.
    """
    args = [str(a) for a in config.invocation_params.args]
    here = config.invocation_params.dir.resolve()
    root = config.rootpath.resolve()
    for flag, value in zip(args, args[1:]):
        if not flag.startswith("--nvseg-") or flag.removeprefix("--nvseg-") not in path_options:
            continue
        path = (here / value).resolve()
        moved = (root == path or root in path.parents) and not (root == here or root in here.parents)
        if moved:
            raise pytest.UsageError(
                f"{flag} {value} was given as two words, and pytest, which picks its rootdir before plugins load, "
                f"took {value} for a test path: the rootdir became {root}, so this project's ini file and cache "
                f"dir would not be used. Write {flag}={value} as one word, or set {flag[2:].replace('-', '_')} "
                "in the ini file.")


def check_passthrough(text: str) -> list[str]:
    """Split --nvseg-args and refuse flags the wrapper does not have or the harness owns."""
    from nvseg_bench.cli import build_parser

    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise pytest.UsageError(f"--nvseg-args {text!r} does not split into words ({exc}); check its quotes.") from None
    known = {s for action in build_parser()._actions for s in action.option_strings}
    for token in tokens:
        flag = token.split("=", 1)[0]
        if not flag.startswith("-"):
            continue
        if flag in RESERVED:
            raise pytest.UsageError(
                f"--nvseg-args sets {flag}, which the harness sets itself for each run. "
                "Remove it; choose runs with -m smoke / sanity / user and the evidence root with --nvseg-out.")
        if flag not in known:
            close = difflib.get_close_matches(flag, sorted(known), n=1)
            hint = f" Did you mean {close[0]}?" if close else ""
            raise pytest.UsageError(f"--nvseg-args has {flag!r}, which is not an nvseg-finetune flag.{hint} "
                                    "See `nvseg-finetune --help` for the flags it passes through.")
    return tokens


@dataclass
class HarnessOptions:
    gpu: bool = False
    rerun: bool = False
    task06: Path | None = None
    dataset: Path | None = None
    datalist: Path | None = None
    pretrained_ckpt: Path | None = None
    network_config: Path | None = None
    bundle_dir: Path | None = None
    out: Path | None = None
    report: Path | None = None
    trusted: bool = False
    trusted_only: Path | None = None
    target_anatomy: str | None = None
    label_mapping: str | None = None
    seeds: str | None = None
    folds: str | None = None
    require_significant: bool = False
    min_agreement: float = MIN_AGREEMENT
    min_nsd_gain: float | None = None  # the opt-in nsd_gain gate's bound (harness/boundary.py); None: off
    args: list[str] = field(default_factory=list)
    tracking: list[str] = field(default_factory=list)  # the CLI's --tracking VALUE, kept out of the cache key
    autosave: bool = False
    storage: Path | None = None  # the history store (default ROOTDIR/.nvseg-history)
    compare: str | None = None  # a saved run id, or "last"
    compare_fail: list[Threshold] = field(default_factory=list)

    @classmethod
    def from_config(cls, config: pytest.Config, features: Sequence[Any] = ()) -> HarnessOptions:
        """The runs' own options, then each feature's (`Feature.read_options`), as one value."""
        check_rootdir(config, {name for name, _ in PATH_OPTIONS} | {n for f in features for n in f.path_options})
        paths = {name.replace("-", "_"): option_path(config, name) for name, _ in PATH_OPTIONS}
        texts = {name.replace("-", "_"): option_value(config, name)[0] for name, _ in TEXT_OPTIONS}
        args = check_passthrough(texts.pop("args") or "")
        gpu = bool(config.getoption("gpu") or config.getini("nvseg_gpu"))
        args += _seed_args(texts["seeds"]) + _fold_args(texts["folds"])
        args += _choice_args(texts.pop("model"), "model", MODEL_NAMES) + _choice_args(texts.pop("modality"), "modality",
                                                                                      MODALITIES)
        tracking = _tracking_args(texts.pop("tracking"))
        read = {k: v for f in features if f.read_options for k, v in f.read_options(config).items()}
        return cls(gpu=gpu, rerun=bool(config.getoption("nvseg_rerun")), args=args, tracking=tracking,
                   **paths, **texts, **read)


def _seed_args(seeds: str | None) -> list[str]:
    """--nvseg-seeds=0,1,2 -> the CLI's --seeds."""
    from nvseg_bench.inputs.request import parse_seeds

    return _checked_args(seeds, "seeds", lambda text: (parse_seeds(text), text)[1])


def _fold_args(folds: str | None) -> list[str]:
    """--nvseg-folds=all -> the CLI's --folds."""
    from nvseg_bench.inputs.request import parse_folds

    return _checked_args(folds, "folds", parse_folds)


def _tracking_args(value: str | None) -> list[str]:
    """--nvseg-tracking=mlflow -> the CLI's --tracking; a tracker whose package is missing is a usage error."""
    from nvseg_bench.errors import NvsegError
    from nvseg_bench.tracking.choice import checked, parse_tracking

    args = _checked_args(value, "tracking", lambda text: (parse_tracking(text), text)[1])
    try:
        checked([parse_tracking(value)] if value else None)
    except NvsegError as exc:
        raise pytest.UsageError(f"--nvseg-tracking: {exc.render('')}") from None
    return args


def _choice_args(value: str | None, name: str, choices: Sequence[str]) -> list[str]:
    """--nvseg-model=ctmr -> the CLI's --model ctmr (part of each run's cache key, as every passed flag is)."""

    def parse(text: str) -> str:
        if text not in choices:
            raise argparse.ArgumentTypeError(f"{text!r} must be one of {', '.join(choices)}")
        return text

    return _checked_args(value, name, parse)


def _checked_args(value: str | None, name: str, parse: Callable[[str], str]) -> list[str]:
    """The CLI's --NAME VALUE, parsed here so a typo is a usage error, not a failed run."""
    if not value:
        return []
    try:
        return [f"--{name}", parse(value)]
    except argparse.ArgumentTypeError as exc:
        raise pytest.UsageError(f"--nvseg-{name}: {exc}") from None
