"""Resume: every single-process finetune keeps its last completed epoch, and `--resume OUT` continues there.
The one home of resuming: the stopped run read back into a request (`stopped_request`; the CLI lends its
parser), the checks and the choice of checkpoint and phases (`choose_point`), the staged saver and loader
with the RNG module (rng_states.py, copied into OUT/configs), and what output.json records. The phase loop
calls phases/resumed.py for the phases a stopped run finished and for the trace over every log.

Saving, by config override only (so NVIDIA's bundle runs unchanged): MONAI's CheckpointSaver is attached
to the trainer after the bundle's own handlers, so at the end of each epoch it runs after that epoch's
validation. It keeps the latest epoch only, in OUT/checkpoints/resume/: the network, the optimizer, the
trainer's state (epoch, iteration) and the best-score record of the bundle's key-metric saver (so a
worse epoch after the resume cannot replace model_finetune.pt). The constant-lr continual recipe has
no scheduler state to keep (`lr_schedule#activate` is off). After a finetune completes the file is
removed: a finished run needs none.

Resuming: CheckpointLoader with the same keys restores them when the trainer starts, ignite then runs
the remaining epochs, and the validation at start is skipped (it ran before the stop). The bundle's
`run` list is read from its own configs, so the saver and loader are attached before it runs.
No torch, no monai.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import re
import shlex
import shutil
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from nvseg_bench import PROG
from nvseg_bench.errors import ArgumentError, NvsegError
from nvseg_bench.inputs.request import Request
from nvseg_bench.phase_names import EVAL_PRETRAINED, FINETUNE
from nvseg_bench.planning.plan import Plan
from nvseg_bench.stage.configs import Staged

FOLDER = Path("checkpoints") / "resume"
PREFIX = "resume"
STAGED = "resume.json"
RNG_MODULE = "nvseg_rng"  # staged beside the configs; the finetune phase has OUT/configs on its PYTHONPATH
RNG_FILE = Path(__file__).with_name("rng_states.py")  # its source, copied into the stage as RNG_MODULE
_EPOCH = re.compile(r"epoch=(\d+)\.pt$")


@dataclass(frozen=True)
class ResumePoint:
    """Where a stopped run continues: after `epoch` (0: no epoch completed), from `checkpoint`; `since`: when the
    stopped run started (epoch seconds), so files it wrote, such as the best checkpoint, count as this run's."""

    epoch: int
    checkpoint: Path | None
    since: float = 0.0
    incomplete: tuple[Path, ...] = ()  # newer checkpoints the stop cut short while they were written
    stopped: dict[str, Any] = field(default_factory=dict, compare=False)  # the stopped run's output.json


def _bundle_configs(stack: list[str], out_dir: Path) -> list[dict[str, Any]]:
    """The stack's bundle configs (not the run's staged ones), in order."""
    configs = []
    for name in stack:
        path = Path(name)
        if path.parent != out_dir / "configs" and path.is_file():
            configs.append(json.loads(path.read_text(encoding="utf-8")))
    return configs


def bundle_run(configs: list[dict[str, Any]]) -> list[Any]:
    """The `run` list the bundle's configs end with (the last file that sets it wins, as in MONAI)."""
    found: list[Any] = []
    for config in configs:
        if isinstance(config.get("run"), list):
            found = config["run"]
    return found


def key_metric_saver(configs: list[dict[str, Any]]) -> int | None:
    """Index in validate#handlers of the CheckpointSaver that keeps the best model, or None."""
    handlers: list[Any] = []
    for config in configs:
        if isinstance(config.get("validate"), dict) and isinstance(config["validate"].get("handlers"), list):
            handlers = config["validate"]["handlers"]
        if isinstance(config.get("validate#handlers"), list):
            handlers = config["validate#handlers"]
    return next((i for i, h in enumerate(handlers) if isinstance(h, dict)
                 and str(h.get("_target_", "")).endswith("CheckpointSaver") and h.get("save_key_metric")), None)


def override(stack: list[str], out_dir: Path, point: ResumePoint | None, amp: bool) -> dict[str, Any]:
    """The staged override: the epoch saver, and with `point` the loader; both attached before the bundle runs."""
    configs = _bundle_configs(stack, out_dir)
    # the trainer first: resolving it builds the data loaders before the network, as the bundle's own run does,
    # so the seeds MONAI draws for the transforms are the same as without the saver
    state: dict[str, str] = {"trainer": "@train#trainer", "model": "@network", "optimizer": "@optimizer",
                             "rng": "@nvseg_resume_rng"}
    best = key_metric_saver(configs)
    if best is not None:
        state["best"] = f"$@validate#handlers#{best}._key_metric_checkpoint"
    if amp:  # fp16 training keeps a loss scale that grows and shrinks over the epochs
        state["scaler"] = "$@train#trainer.scaler"
    values: dict[str, Any] = {
        "nvseg_resume_rng": {"_target_": f"{RNG_MODULE}.RandomStates", "transform": "$@train#dataset.transform"},
        "nvseg_resume_saver": {"_target_": "CheckpointSaver", "save_dir": str(out_dir / FOLDER), "save_dict": state,
                               "file_prefix": PREFIX, "epoch_level": True, "save_interval": 1, "n_saved": 1},
    }
    attach = ["$@nvseg_resume_saver.attach(@train#trainer)"]
    if point is not None and point.checkpoint is not None:
        values["nvseg_resume_loader"] = {"_target_": "CheckpointLoader", "load_path": str(point.checkpoint),
                                         "load_dict": state, "map_location": "@device"}
        values["val_at_start"] = False  # epoch 0 was validated before the stop
        attach.append("$@nvseg_resume_loader.attach(@train#trainer)")
    steps = bundle_run(configs)
    values["run"] = [*steps[:-1], *attach, *steps[-1:]]  # attached just before the bundle's last step, its run()
    return values


def attach(staged: Staged, out_dir: Path, point: ResumePoint | None, amp: bool) -> Staged:
    """Write OUT/configs/resume.json (and the RNG module beside it) and put it into the train stack, before the
    logging switch."""
    shutil.copyfile(RNG_FILE, staged.config_dir / f"{RNG_MODULE}.py")
    path = staged.config_dir / STAGED
    path.write_text(json.dumps(override(staged.train_stack, out_dir, point, amp), indent=2) + "\n")
    return replace(staged, train_stack=[*staged.train_stack[:-1], str(path), staged.train_stack[-1]])


def complete(path: Path) -> bool:
    """Whether a checkpoint was written to the end. MONAI's saver writes in place (not atomically), so a stop
    during the write leaves a truncated file; torch's zip format keeps its directory last, so a truncated
    file has none."""
    try:
        with zipfile.ZipFile(path) as archive:
            return bool(archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def last_point(out_dir: Path) -> ResumePoint:
    """The latest complete epoch checkpoint a stopped run left, or epoch 0 when none finished; `incomplete`
    names the newer ones the stop cut short."""
    found = sorted(((int(m.group(1)), p) for p in (out_dir / FOLDER).glob("*.pt") if (m := _EPOCH.search(p.name))),
                   reverse=True)
    cut = tuple(path for _, path in itertools.takewhile(lambda item: not complete(item[1]), found))
    rest = found[len(cut):]
    if not rest:
        return ResumePoint(0, None, incomplete=cut)
    epoch, path = rest[0]
    return ResumePoint(epoch, path, incomplete=cut)


def discard(out_dir: Path) -> None:
    """Remove the epoch checkpoint of a finished finetune."""
    for path in (out_dir / FOLDER).glob("*.pt"):
        path.unlink(missing_ok=True)


def read_stopped(out_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The stopped run's output.json and manifest.json (the latter {} when missing)."""
    doc = json.loads((out_dir / "output.json").read_text())
    try:
        manifest = json.loads((out_dir / "manifest.json").read_text())
    except (OSError, ValueError):
        manifest = {}
    return doc, manifest


def changes(doc: dict[str, Any], manifest: dict[str, Any], *, bundle: dict[str, str], dataset: dict[str, Any],
            weights_sha256: str) -> list[str]:
    """What differs between the stopped run's inputs and this run's: recipe files, dataset files, weights."""
    found = []
    before = ((doc.get("input") or {}).get("bundle") or {}).get("configs_sha256")
    if before is not None and before != bundle:
        names = sorted(k for k in before.keys() | bundle.keys() if before.get(k) != bundle.get(k))
        found.append(f"bundle files changed: {', '.join(names[:8])}")
    files = ((manifest.get("inputs") or {}).get("dataset") or {}).get("files")
    if files is not None:
        now = dataset["files"]
        names = sorted(k for k in files.keys() | now.keys()
                       if (files.get(k) or {}).get("sha256") != (now.get(k) or {}).get("sha256"))
        if names:
            found.append(f"dataset files changed, added or removed: {', '.join(names[:8])}")
    weights = ((doc.get("input") or {}).get("pretrained_weights") or {}).get("sha256")
    if weights is not None and weights != weights_sha256:
        found.append(f"the pretrained checkpoint changed (sha256 {weights[:12]} then, {weights_sha256[:12]} now)")
    return found


STOPPED_LOG = FINETUNE + ".stopped-{n}.log"  # finetune.stopped-1.log, ...


def set_aside_log(log: Path) -> Path | None:
    """Keep the stopped finetune's log beside the new one (finetune.stopped-N.log); the trace needs both."""
    if not log.is_file():
        return None
    n = len(earlier_logs(log.parent)) + 1
    target = log.with_name(STOPPED_LOG.format(n=n))
    log.rename(target)
    return target


def earlier_logs(logs_dir: Path) -> list[Path]:
    """The logs of the finetunes stopped before this one, oldest first."""
    found = [(int(p.stem.rsplit("-", 1)[1]), p) for p in logs_dir.glob(STOPPED_LOG.format(n="*"))
             if p.stem.rsplit("-", 1)[1].isdigit()]
    return [p for _, p in sorted(found)]


DONE_MARKS = {EVAL_PRETRAINED: Path(EVAL_PRETRAINED) / "metrics.csv",
              FINETUNE: Path("checkpoints") / "model_finetune.pt"}  # what a finished phase leaves in OUT


def finished(doc: dict[str, Any], out_dir: Path, name: str) -> bool:
    """Whether the stopped run finished phase `name`: its output.json says so and what it writes is there.
    The evaluation of the finetuned checkpoint never counts: it is what the resumed run is for."""
    codes = (doc.get("invocation") or {}).get("phase_return_codes") or {}
    return name in DONE_MARKS and codes.get(name) == 0 and (out_dir / DONE_MARKS[name]).is_file()


def runtime_block(out_dir: Path, point: ResumePoint | None) -> dict[str, Any] | None:
    """output.json runtime.resumed: the epoch it continued after, how often the run was resumed (counted from the
    stopped run's output.json), the earlier finetune logs."""
    if point is None:
        return None
    before = (point.stopped.get("runtime") or {}).get("resumed")
    times = int(before.get("times", 0)) + 1 if isinstance(before, dict) else 1
    return {"from_epoch": point.epoch, "times": times,
            "earlier_logs": [str(p) for p in earlier_logs(out_dir / "logs")]}


RESUME_ALONE = {"--resume", "--debug", "--phase-timeout", "--save-to"}  # what may come with --resume OUT


def stopped_request(out: Path, argv: Sequence[str], *, dataset_given: Path | None, phase_timeout: float | None,
                    parse: Callable[[list[str]], argparse.Namespace],
                    build: Callable[[argparse.Namespace, Sequence[str]], Request]) -> Request:
    """The request of the stopped run in OUT (--resume OUT), read from its output.json, to be continued there.
    `parse` and `build` are the CLI's own parser and request builder, applied to the recorded command."""
    extra = [a for a in argv if a.startswith("--") and a.split("=")[0] not in RESUME_ALONE]
    extra += [str(dataset_given)] if dataset_given else []
    if extra:
        raise NvsegError(f"--resume reads the recipe from {out}/output.json; {' '.join(extra)} cannot change it.",
                         fix=[f"Run `{PROG} --resume {out}` alone (with --debug or --phase-timeout if you like)."])
    doc = _stopped_run(out)
    invocation = doc.get("invocation") or {}
    argv_then = shlex.split(invocation.get("command") or "")[1:]
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            args = parse(argv_then)
    except SystemExit:
        raise NvsegError(f"the command recorded in {out}/output.json does not parse any more: "
                         f"{invocation.get('command')!r}.", fix=["Start a new run with that command instead."]) from None
    if args.folds:
        raise NvsegError(f"{out} is part of a cross-validation ({invocation.get('command')}); it is not resumed.",
                         fix=["Rerun the cross-validation in a new --output-dir."])
    if args.seeds:
        raise NvsegError(f"{out} is part of a seed sweep ({invocation.get('command')}); a sweep is not resumed.",
                         fix=["Rerun the sweep, or run the missing seed on its own with --seed."])
    req = build(args, argv_then)
    launch = Path(invocation.get("launch_dir") or Path.cwd())
    anchored = {key: launch / value for key in ("dataset_dir", "datalist", "network_config", "bundle_dir",
                                                "preprocess_cache")
                if isinstance(value := getattr(req, key), Path) and not value.is_absolute()}
    if req.pretrained_ckpt and not Path(req.pretrained_ckpt).is_absolute():
        anchored["pretrained_ckpt"] = str(launch / req.pretrained_ckpt)
    plan = doc.get("plan") or {}  # the plan's choices stand: a GPU with less free memory must not change them
    pinned = {"patch_size": req.patch_size or plan.get("patch_size"),
              "cache_rate": req.cache_rate if req.cache_rate is not None else plan.get("train_dataset_cache_rate")}
    return replace(req, **anchored, **pinned, output_dir=out.resolve(), resuming=True,
                   phase_timeout=phase_timeout or req.phase_timeout)


def _stopped_run(out: Path) -> dict:
    path = out / "output.json"
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise NvsegError(f"--resume {out}: {path} is not the output.json of an {PROG} run ({exc}).",
                         fix=["Pass the --output-dir of the stopped run."]) from None
    if doc.get("status") == "passed":
        raise NvsegError(f"--resume {out}: that run finished ({doc.get('headline')}); there is nothing to resume.",
                         fix=["Start a new run in a new --output-dir to train more."])
    return doc


def choose_point(req: Request, out_dir: Path, plan: Plan, *, bundle_sha256: dict[str, str],
                 dataset: Callable[[], dict[str, Any]], weights_sha256: str) -> tuple[ResumePoint | None, str | None]:
    """For --resume: where the stopped run continues (its checkpoint, or the phases after a finished finetune)
    and the plan's line, after checking that nothing it used has changed (`dataset`: this run's dataset inputs,
    computed only when resuming)."""
    if not req.resuming:
        return None, None
    if plan.multi_gpu:
        raise ArgumentError(f"--resume {out_dir}: that run used several processes; resuming is for one-process runs.",
                            fix=["Start it again in a new --output-dir."])
    doc, manifest = read_stopped(out_dir)
    differs = changes(doc, manifest, bundle=bundle_sha256, weights_sha256=weights_sha256, dataset=dataset())
    if differs:
        raise ArgumentError(f"--resume {out_dir}: the inputs changed since that run stopped, so the resumed run would "
                            "mix two recipes; nothing was run.", evidence=differs,
                            fix=["Restore those files, or start a new run in a new --output-dir."])
    point = replace(last_point(out_dir), since=float((doc.get("runtime") or {}).get("started_at") or 0.0), stopped=doc)
    if finished(doc, out_dir, FINETUNE):
        where = "the finetune had finished: only the phases after it run"
    else:
        kept = point.checkpoint or "no epoch had completed: the finetune starts again"
        where = f"after epoch {point.epoch} of {plan.epochs} ({kept})"
        if point.incomplete:
            where += (f"; {', '.join(p.name for p in point.incomplete)} is incomplete (the stop came while it was "
                      "written) and is passed over")
    return point, f"resume: {where}; the inputs are those of the stopped run"
