"""Every pass over the pretrained checkpoint, kept for the next run that would repeat it.

The pretrained formal evaluation (validation and test split) and the pretrained forgetting pass read the
start checkpoint, the cases and the configs; nothing in them depends on the seed, the learning rate, the
epochs or the fold's training cases. So each is keyed by what that phase reads: its command and config
stack by content (the output dir, the dataset dir, the datalist's path and the checkpoint's path masked,
the overrides only training reads dropped: stage/overrides.py), the bytes of the cases it scores (the
datalist split its evaluation reads, or the images its inference config lists), the checkpoint's digest,
the bundle code, the package versions and the device. The prompts are in its config. A later run, seed,
fold or campaign with the same key takes the kept outputs (predictions, metrics, log, figures, all that
the boundary metrics and the forgetting scores read) instead of running the phase. Kept under the
preprocessing cache root (`evaluations/KEY/`), written whole or not at all, off with
--no-preprocess-cache. A damaged entry is ignored and written again.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from nvseg_bench.phase_names import EVAL_PRETRAINED, EVAL_SPLITS, EVAL_TEST_PRETRAINED, FORGET_PRETRAINED
from nvseg_bench.store import limits as cache_store
from nvseg_bench.phases.logparse import parse_lines
from nvseg_bench.paths import phase_log
from nvseg_bench.phases.runner import PhaseResult
from nvseg_bench.prepared import Prepared
from nvseg_bench.stage import overrides

MEMOIZED = (EVAL_PRETRAINED, EVAL_TEST_PRETRAINED, FORGET_PRETRAINED)  # the phases that read no finetune
PHASE = EVAL_PRETRAINED  # the first of them, which a campaign shares as a folder as well
KEPT = cache_store.EVALUATIONS  # ROOT/evaluations/KEY/
RESULT = "result.json"
# the phase's figures kept beside its files, as PhaseResult names them
FIGURES = ("seconds", "peak_gpu_mb", "peak_rss_mb", "gpu", "log_tail", "arrivals", "start")
BUNDLE_CODE = ("configs", "scripts")  # what of the bundle a phase executes; models/ is the checkpoint's
# which datalist entries a split's evaluation reads (monai's datafold_read: fold 0 of "training" validates)
SPLIT_ENTRIES = {"validation": lambda doc: [e for e in doc.get("training", []) if e.get("fold") == 0],
                 "test": lambda doc: list(doc.get("testing", []))}
# where the masked values come from: keyed by content instead (cases by bytes, the checkpoint by digest)
MASKED = ("dataset_dir", "data_list_file_path")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _bundle_code(bundle_dir: Path) -> dict[str, str]:
    files = sorted(f for sub in BUNDLE_CODE for f in (bundle_dir / sub).rglob("*")
                   if f.is_file() and "__pycache__" not in f.parts)
    return {str(f.relative_to(bundle_dir)): _sha(f.read_bytes()) for f in files}


def _option(command: list[str], flag: str) -> str | None:
    return command[command.index(flag) + 1] if flag in command[:-1] else None


def _masks(p: Prepared, command: list[str], stack: list[Path]) -> list[tuple[str, str]]:
    """(text, placeholder) pairs, longest first: OUT, the checkpoint, the dataset dir and the datalist path."""
    pairs = {str(p.out_dir): "<OUT>", str(p.weights.path): "<CKPT>", str(p.dataset_dir): "<DATA>"}
    datalist = _datalist(p, command, stack)
    if datalist is not None:
        pairs[str(datalist)] = "<DATALIST>"
    return sorted(pairs.items(), key=lambda kv: -len(kv[0]))


def _masked(text: str, masks: list[tuple[str, str]]) -> str:
    for value, placeholder in masks:  # whole path names only: OUT=/x/c must leave /x/cache alone
        text = re.sub(re.escape(value) + r"(?![\w.-])", placeholder, text)
    return text


def _staged(out_dir: Path, path: Path) -> dict[str, Any] | None:
    """An override this tool staged under OUT (a CV's shared pass reads its first fold's), as data."""
    if path.suffix != ".json" or out_dir not in path.parents:
        return None
    values = json.loads(path.read_text())
    return values if isinstance(values, dict) else None


def _config_digest(path: Path, out_dir: Path, masks: list[tuple[str, str]] | None = None) -> str:
    """A config's content, masked (OUT alone by default); the overrides this tool staged lose the
    training-only values, which an evaluation carries in its stack but never reads."""
    text, values = path.read_text(), _staged(out_dir, path)
    masks = masks if masks is not None else [(str(out_dir), "<OUT>")]
    if values is not None:
        ignored = overrides.training_only()
        text = json.dumps({k: v for k, v in values.items() if k not in ignored}, sort_keys=True)
    return _sha(_masked(text, masks).encode())


def _stack(command: list[str]) -> list[Path]:
    given = _option(command, "--config_file")
    return [Path(f) for f in json.loads(given)] if given else []


def _datalist(p: Prepared, command: list[str], stack: list[Path]) -> Path | None:
    """The datalist the phase reads: its command's, else the last staged override's that names one."""
    given = _option(command, "--data_list_file_path")
    for path in reversed(stack):  # a later config file wins, as in monai.bundle
        if given is None and (values := _staged(p.out_dir, path)) is not None:
            given = values.get("data_list_file_path")
    return Path(given) if given else None


def _digest(p: Prepared, path: Path) -> str | None:
    """A dataset file's sha256: the audit's when it took one, else read now; None when it is missing."""
    if str(path) in p.digests:
        return p.digests[str(path)]
    try:
        return _sha(path.read_bytes())
    except OSError:
        return None


def _split(phase: str) -> str | None:
    return next((split for split, phases in EVAL_SPLITS.items() if phase in phases), None)


def _cases(p: Prepared, phase: str, command: list[str], stack: list[Path]) -> list[list[str]] | None:
    """[name, sha256] of every dataset file the phase scores, sorted; None when one cannot be read."""
    names: set[str] = set()
    split, datalist = _split(phase), _datalist(p, command, stack)
    if split is not None and datalist is not None:
        entries = SPLIT_ENTRIES[split](json.loads(datalist.read_text()))
        names |= {str(e[k]) for e in entries for k in ("image", "label") if k in e}
    data = str(p.dataset_dir)
    for path in stack:  # an inference config lists its images by absolute path (stage/inference.py)
        for entry in (_staged(p.out_dir, path) or {}).get("dataset#data", []):
            if isinstance(entry, dict) and str(entry.get("image", "")).startswith(data + os.sep):
                names.add(str(Path(entry["image"]).relative_to(data)))
    cases = []
    for name in sorted(names):
        digest = _digest(p, p.dataset_dir / name)
        if digest is None:
            return None
        cases.append([name, digest])
    return cases


def key(p: Prepared, phase: str = PHASE) -> str | None:
    """What the phase's outcome depends on, hashed; None when it is not a pretrained pass of this run or a
    case it scores cannot be read."""
    command = p.commands.get(phase)
    if phase not in MEMOIZED or command is None:
        return None
    stack = _stack(command)
    masks = _masks(p, command, stack)
    cases = _cases(p, phase, command, stack)
    if cases is None:
        return None
    given = {"--config_file"} | {f"--{name}" for name in MASKED}
    material = {
        "phase": phase,
        "command": [_masked(arg, masks) for i, arg in enumerate(command) if i == 0 or command[i - 1] not in given],
        "configs": [_config_digest(path, p.out_dir, masks) for path in stack],
        "bundle_code": _bundle_code(p.bundle_dir),
        "checkpoint": p.weights.sha256,
        "cases": cases,
        "packages": p.env.get("packages"),
        "device": [p.plan.device, p.env.get("gpu_name")],
    }
    return _sha(json.dumps(material, sort_keys=True).encode())[:24]


def _usable(kept: Path, phase: str) -> dict[str, Any] | None:
    try:
        saved = json.loads((kept / RESULT).read_text())
        ok = saved.get("return_code") == 0 and saved.get("phase", PHASE) == phase and (kept / phase).is_dir()
        return saved if ok and (kept / "phase.log").is_file() else None
    except (OSError, ValueError):
        return None


def planned(p: Prepared) -> dict[str, str]:
    """phase -> key of each pretrained pass of this run that a usable kept entry stands for."""
    if p.cache is None:
        return {}
    found = {}
    for phase in MEMOIZED:
        memo_key = key(p, phase)
        if memo_key and _usable(p.cache.root / KEPT / memo_key, phase) is not None:
            found[phase] = memo_key
    return found


def plan_line(p: Prepared) -> str | None:
    """The plan's line naming the pretrained passes this run takes from earlier identical ones."""
    found = planned(p)
    if not found:
        return None
    return (f"pretrained passes kept: {', '.join(f'{n} ({k})' for n, k in found.items())} were run on the same "
            "checkpoint, cases, prompts and configs before; their outputs are copied, not run again")


def recall(root: Path, found_key: str, p: Prepared, phase: str = PHASE) -> tuple[PhaseResult, str] | None:
    """The kept phase copied into OUT, as the phase's result, and the run dir that made it; None when there
    is none or it is damaged."""
    kept = root / KEPT / found_key
    saved = _usable(kept, phase)
    if saved is None:
        return None
    log_text = (kept / "phase.log").read_text()
    cache_store.touch(kept)  # recently used: the last to go when the cache needs room
    shutil.copytree(kept / phase, p.out_dir / phase, dirs_exist_ok=True)
    log_path = phase_log(p.out_dir, phase)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text(log_text)
    facts = parse_lines(log_text.splitlines())
    kept_result = PhaseResult(name=phase, command=p.commands[phase], log_path=str(log_path), return_code=0,
                              facts=facts, reused_from=found_key, **{k: saved[k] for k in FIGURES})
    return kept_result, str(saved.get("run_dir"))


def keep(root: Path, found_key: str, result: PhaseResult, p: Prepared) -> None:
    """Store a successful pretrained pass for later runs; a failure to store is only a missed saving."""
    phase = result.name
    target = root / KEPT / found_key
    if result.return_code != 0 or result.failure or target.is_dir():
        return
    staging = None
    try:
        (root / KEPT).mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=root / KEPT, prefix=f".{found_key}."))
        shutil.copytree(p.out_dir / phase, staging / phase)
        shutil.copy2(result.log_path, staging / "phase.log")
        saved: dict[str, Any] = {k: getattr(result, k) for k in FIGURES}
        saved |= {"return_code": result.return_code, "phase": phase, "run_dir": str(p.out_dir)}
        (staging / RESULT).write_text(json.dumps(saved, indent=1) + "\n")
        os.replace(staging, target)  # whole or not at all; a concurrent run that won the race keeps its copy
        cache_store.touch(target)
    except OSError:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
