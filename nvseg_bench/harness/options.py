"""Harness settings: command-line options first, then environment, then the ini file.

`HarnessOptions.from_config` is the one place that reads them; a bad value is a usage error
that names the option and the fix before any test runs.
"""
from __future__ import annotations

import argparse
import difflib
import json
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from nvseg_bench import paths
from nvseg_bench.history.regression import Threshold, parse_threshold
from nvseg_bench.history.storage import DEFAULT_DIR, store_dir

GROUP = "nvseg-bench (finetune runs as fixtures)"
MIN_AGREEMENT = 0.8  # the forgetting gate's default bound (docs/harness.md)
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
    ("report", "write report.md and a self-contained report.html here"),
    ("trusted-only", "judge the existing run dir DIR (its output.json) with the gate items and the verifier; "
                     "run nothing"),
]
TEXT_OPTIONS = [
    ("target-anatomy", "VISTA3D class that local label 1 means, for the user run"),
    ("label-mapping", "'[[local, global], ...]' for the user run"),
    ("seeds", "a seed sweep for every run, e.g. 0,1,2 (nvseg-finetune --seeds); gates judge the sweep's representative seed"),
    ("folds", "cross-validation for every run, 'all' or e.g. 0,1,2,3,4 (nvseg-finetune --folds); gates judge the "
              "pooled figures over every case"),
    ("args", "other nvseg-finetune flags for every run, e.g. \"--seed 1 --phase-timeout 3600\""),
    ("tracking", "log every run this session starts to mlflow[=URI] and/or tensorboard (nvseg-finetune --tracking); "
                 "not part of the cache key: a run served from the cache is not logged again (--nvseg-rerun logs it)"),
]
# the harness owns these: a run's identity and where it writes
RESERVED = {"--output-dir", "--smoke", "--sanity", "--dry-run", "--dataset-dir", "--help", "-h", "--version"}


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("nvseg", GROUP)
    group.addoption("--gpu", action="store_true", help="allow runs on a CUDA GPU (without it every run sees no GPU)")
    group.addoption("--nvseg-rerun", action="store_true", help="ignore cached runs and run again")
    group.addoption("--nvseg-trusted", action="store_true",
                    help="after each run, judge its pack with the CPU verifier (python -m eval_engine.run_trusted) "
                         "and add a `trusted` gate")
    for name, text in PATH_OPTIONS + TEXT_OPTIONS:
        dest = "nvseg_" + name.replace("-", "_")
        group.addoption(f"--nvseg-{name}", dest=dest, metavar="DIR" if (name, text) in PATH_OPTIONS else "VALUE",
                        help=text)
        parser.addini(dest, f"default for --nvseg-{name}", type="string", default="")
    parser.addini("nvseg_gpu", "default for --gpu", type="bool", default=False)
    parser.addini("nvseg_trusted", "default for --nvseg-trusted", type="bool", default=False)
    group.addoption("--nvseg-require-significant", action="store_true",
                    help="turn on the significance gate: fail a run whose formal gain's 95%% interval is not above 0")
    parser.addini("nvseg_require_significant", "default for --nvseg-require-significant", type="bool", default=False)
    group.addoption("--nvseg-min-agreement", metavar="FRACTION",
                    help="the forgetting gate fails a class whose agreement with the pretrained model is below this "
                         f"(default {MIN_AGREEMENT})")
    parser.addini("nvseg_min_agreement", "default for --nvseg-min-agreement", type="string", default="")
    add_history_options(group, parser)


def _value(config: pytest.Config, name: str) -> tuple[str | None, Path]:
    """(value, base dir for a relative path) from the option, else env (task06), else the ini key."""
    dest = "nvseg_" + name.replace("-", "_")
    given = config.getoption(dest)
    if given:
        return given, config.invocation_params.dir
    if name == "task06" and os.environ.get(TASK06_ENV):
        return os.environ[TASK06_ENV], config.invocation_params.dir
    ini = config.getini(dest)
    return (ini or None), config.rootpath


def _path(config: pytest.Config, name: str) -> Path | None:
    value, base = _value(config, name)
    if value is None:
        return None
    return (base / Path(value).expanduser()).resolve()


def check_rootdir(config: pytest.Config) -> None:
    """Refuse `--nvseg-dataset DIR` as two words when it moved pytest's rootdir.

    pytest picks its rootdir and ini file before plugins load, so it reads the DIR of a two-word
    plugin option as a test path. Left alone, the project's ini file is ignored and the cache
    (with the run evidence) lands next to the data.
    """
    args = [str(a) for a in config.invocation_params.args]
    here = config.invocation_params.dir.resolve()
    root = config.rootpath.resolve()
    for flag, value in zip(args, args[1:]):
        if not flag.startswith("--nvseg-") or flag.removeprefix("--nvseg-") not in dict(PATH_OPTIONS):
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


def check_pack(pack: Path | None) -> None:
    """--nvseg-trusted-only must name a run dir: one with a readable output.json."""
    if pack is None:
        return
    doc = pack / "output.json"
    if not doc.is_file():
        raise pytest.UsageError(f"--nvseg-trusted-only={pack} has no output.json. Pass the --output-dir of one "
                                "nvseg-finetune run (the folder that holds output.json and manifest.json).")
    try:
        json.loads(doc.read_text())
    except ValueError as exc:
        raise pytest.UsageError(f"{doc} is not valid JSON ({exc}); copy the run dir again from where it ran.") from None


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
    args: list[str] = field(default_factory=list)
    tracking: list[str] = field(default_factory=list)  # the CLI's --tracking VALUE, kept out of the cache key
    autosave: bool = False
    storage: Path | None = None  # the history store (default ROOTDIR/.nvseg-history)
    compare: str | None = None  # a saved run id, or "last"
    compare_fail: list[Threshold] = field(default_factory=list)

    @classmethod
    def from_config(cls, config: pytest.Config) -> HarnessOptions:
        check_rootdir(config)
        paths = {name.replace("-", "_"): _path(config, name) for name, _ in PATH_OPTIONS}
        texts = {name.replace("-", "_"): _value(config, name)[0] for name, _ in TEXT_OPTIONS}
        args = check_passthrough(texts.pop("args") or "")
        gpu = bool(config.getoption("gpu") or config.getini("nvseg_gpu"))
        check_pack(paths["trusted_only"])
        trusted = bool(config.getoption("nvseg_trusted") or config.getini("nvseg_trusted") or paths["trusted_only"])
        args += _seed_args(texts["seeds"]) + _fold_args(texts["folds"])
        tracking = _tracking_args(texts.pop("tracking"))
        significant = bool(config.getoption("nvseg_require_significant") or config.getini("nvseg_require_significant"))
        return cls(gpu=gpu, rerun=bool(config.getoption("nvseg_rerun")), trusted=trusted, args=args, tracking=tracking,
                   require_significant=significant, min_agreement=_min_agreement(config), **paths, **texts,
                   **_history(config))


def _min_agreement(config: pytest.Config) -> float:
    """--nvseg-min-agreement (else the ini key, else MIN_AGREEMENT): a fraction; anything else is a usage error."""
    given = config.getoption("nvseg_min_agreement") or config.getini("nvseg_min_agreement") or str(MIN_AGREEMENT)
    try:
        value = float(given)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise pytest.UsageError(f"--nvseg-min-agreement {given!r} must be a fraction between 0 and 1, e.g. 0.8")
    return value


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


def _checked_args(value: str | None, name: str, parse: Callable[[str], str]) -> list[str]:
    """The CLI's --NAME VALUE, parsed here so a typo is a usage error, not a failed run."""
    if not value:
        return []
    try:
        return [f"--{name}", parse(value)]
    except argparse.ArgumentTypeError as exc:
        raise pytest.UsageError(f"--nvseg-{name}: {exc}") from None


def add_history_options(group: pytest.OptionGroup, parser: pytest.Parser) -> None:
    """--nvseg-autosave, --nvseg-storage, --nvseg-compare, --nvseg-compare-fail and their ini keys."""
    group.addoption("--nvseg-autosave", action="store_true",
                    help=f"save each judged run's record in the history store (default ROOTDIR/{DEFAULT_DIR})")
    group.addoption("--nvseg-storage", metavar="DIR", help="the history store: a folder or file:///abs/dir "
                                                           f"(default ROOTDIR/{DEFAULT_DIR})")
    group.addoption("--nvseg-compare", nargs="?", const="last", metavar="RUN_ID|last",
                    help="set each run beside its saved baseline of the same name: the newest (last, the default) "
                         "or a run id; adds a `baseline` gate")
    group.addoption("--nvseg-compare-fail", action="append", metavar="METRIC:AMOUNT",
                    help="fail the baseline gate on a regression: formal_dice:0.01, formal_dice:1%%, wall:20%% "
                         "(repeatable; implies --nvseg-compare=last)")
    parser.addini("nvseg_autosave", "default for --nvseg-autosave", type="bool", default=False)
    for name in ("storage", "compare"):
        parser.addini(f"nvseg_{name}", f"default for --nvseg-{name}", type="string", default="")
    parser.addini("nvseg_compare_fail", "default for --nvseg-compare-fail (space-separated)", type="args", default=[])


def _history(config: pytest.Config) -> dict:
    """The history settings; a bad store URL or threshold is a usage error that names it."""
    given, base = _value(config, "storage")
    try:
        storage = store_dir(given or DEFAULT_DIR, base if given else config.rootpath)
    except ValueError as exc:
        raise pytest.UsageError(f"--nvseg-storage: {exc}") from None
    try:
        thresholds = [parse_threshold(t) for t in config.getoption("nvseg_compare_fail") or
                      config.getini("nvseg_compare_fail")]
    except ValueError as exc:
        raise pytest.UsageError(f"--nvseg-compare-fail: {exc}") from None
    compare = config.getoption("nvseg_compare") or config.getini("nvseg_compare") or None
    return {"autosave": bool(config.getoption("nvseg_autosave") or config.getini("nvseg_autosave")),
            "storage": storage, "compare": compare or ("last" if thresholds else None), "compare_fail": thresholds}
