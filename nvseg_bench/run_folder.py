"""A finished run folder read as untrusted data, for `predict`: what it may contribute and nothing else.

A run folder may come from anyone (a colleague, a CI artifact, a download), so nothing in it runs.
output.json gives plain values only (label mapping, class names, patch size, window overlap,
autocast), each checked by type and range. The network config (configs/network.json, the run's
--network-config) is accepted only as a network definition of plain values: MONAI network classes
named by `_target_` inside `network_def`, `@NAME` references to plain values, no `$` expression,
no `%` macro, no other `_key_`; predict stages its own copy of what passed, never the run's file.
The checkpoint is the file inside the folder, wherever the folder lies now (the recorded path is
re-rooted at the run folder, never opened as recorded), read as a plain state dict without
unpickling anything else. The bundle comes from this tool's own rule (its bundle/, the pinned hub
snapshot, or `--bundle-dir`), never from a path the folder names. Every refusal is exit 2 naming the
file, before any phase. No monai; torch only for a checkpoint in a format this tool's reader does not read.
"""
from __future__ import annotations

import importlib.util
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from nvseg_bench.inputs.family import CT, MODELS
from nvseg_bench import PROG
from nvseg_bench.errors import ArgumentError
from nvseg_bench.model import bundle_source
from nvseg_bench.model.checkpoints import read_tensors
from nvseg_bench.store.files import sha256_file

NETWORK = Path("configs") / "network.json"
# a class of MONAI's networks: exported by the package, or defined in one of its module files (checked on disk,
# so `monai.networks.nets.vista3d.torch.load`, an import of that module reached as an attribute, is refused)
NETWORK_CLASS = re.compile(r"monai\.networks\.(nets|blocks|layers)\.(?:([a-z0-9_]+)\.)?([A-Z][A-Za-z0-9_]*)")
REFERENCE = re.compile(r"@([A-Za-z_][A-Za-z0-9_]*)")  # a whole-string reference to a top-level id
MAX_ID = 1023  # VISTA3D's class ids (and --new-class ids) stay far below this
MAX_PATCH_EDGE = 1024


@dataclass(frozen=True)
class RunValues:
    """The plain values predict takes from a run's output.json, checked."""

    pairs: list[list[int]]  # [local, global]
    names: dict[int, str]  # global id -> class name
    patch_size: list[int]
    sw_overlap: float
    amp: bool


def refused(file: Path, what: str, fix: str) -> ArgumentError:
    return ArgumentError(f"{file} cannot be used by predict: {what}; nothing was run.",
                         fix=[fix, "A run folder is read as data: predict runs nothing from it."])


def read_output(run_dir: Path) -> dict[str, Any]:
    """output.json as a JSON object; exit 2 for a missing folder, file, or one that does not parse."""
    if not run_dir.is_dir():
        raise ArgumentError(f"the run dir {run_dir} {'is not a folder' if run_dir.exists() else 'does not exist'}.",
                            fix=["Pass the --output-dir of a finished `nvseg-finetune` run."])
    try:
        doc = json.loads((run_dir / "output.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ArgumentError(f"{run_dir} is not an nvseg-finetune run dir: it has no readable output.json.",
                            fix=["Pass the --output-dir of a finished `nvseg-finetune` run."]) from None
    if not isinstance(doc, dict):
        raise refused(run_dir / "output.json", "it is not a JSON object", "Pass the folder of a finished run.")
    if doc.get("status") != "passed":
        raise ArgumentError(f"the run in {run_dir} did not finish (status {str(doc.get('status'))[:40]!r}), so it "
                            "has no checkpoint to predict with.",
                            fix=[f"Finish it first (`{PROG} --resume {run_dir}`), or pass another run dir."])
    return doc


def _section(doc: dict[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key)
    return value if isinstance(value, dict) else {}


def _int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def run_values(doc: dict[str, Any], source: Path) -> RunValues:
    """The mapping, class names, patch size, overlap and autocast, each of its type and in range."""
    given, plan = _section(doc, "input"), _section(doc, "plan")
    pairs = _section(given, "label_mappings").get("default")
    if not (isinstance(pairs, list) and pairs and all(isinstance(p, list) and len(p) == 2 and _int(p[0], 1, 255)
                                                      and _int(p[1], 1, MAX_ID) for p in pairs)):
        raise refused(source, f"input.label_mappings.default is {json.dumps(pairs)[:80]}, not a list of "
                      f"[local 1..255, VISTA3D id 1..{MAX_ID}] pairs", "Pass the folder of a finished run.")
    names = given.get("label_names") or {}
    if not (isinstance(names, dict) and all(k.isdigit() and isinstance(v, str) and len(v) <= 200
                                            for k, v in names.items())):
        raise refused(source, "input.label_names is not a map of class ids to names", "Pass the folder of a finished run.")
    patch, overlap, amp = plan.get("patch_size"), plan.get("sw_overlap"), plan.get("amp", False)
    if not (isinstance(patch, list) and len(patch) == 3 and all(_int(e, 1, MAX_PATCH_EDGE) for e in patch)):
        raise refused(source, f"plan.patch_size is {json.dumps(patch)[:80]}, not three edges of 1..{MAX_PATCH_EDGE}",
                      "Pass the folder of a finished run.")
    if not (isinstance(overlap, (int, float)) and not isinstance(overlap, bool) and math.isfinite(overlap)
            and 0 <= overlap < 1) or not isinstance(amp, bool):
        raise refused(source, f"plan.sw_overlap {overlap!r} is not a number in [0, 1), or plan.amp {amp!r} is no "
                      "true/false", "Pass the folder of a finished run.")
    return RunValues([list(p) for p in pairs], {int(k): v for k, v in names.items()}, list(patch), float(overlap), amp)


def _rerooted(recorded: str, old_root: str, run_dir: Path) -> Path | None:
    """The recorded path's place in the run folder now (None when it lay outside the run)."""
    path = PurePath(recorded)
    if not path.is_absolute():
        return run_dir / path
    try:
        return run_dir / path.relative_to(old_root) if old_root else None
    except ValueError:
        return None


def plain_state_dict(path: Path) -> Path:
    """`path` when it holds only tensors in dicts; exit 2 naming it otherwise. Read by this tool's own unpickler
    (tensors and dicts, nothing else is constructed); a file it cannot read (an older torch format) goes to
    torch.load(weights_only=True), which refuses every other global in the same way."""
    try:
        tensors = read_tensors(path)
    except Exception as exc:  # a damaged or foreign file raises many types; all mean "not a plain state dict"
        raise refused(path, f"it is not a plain state dict ({type(exc).__name__}: {str(exc)[:200]})",
                      "Use a checkpoint written by the run (torch.save of a state dict), or --checkpoint PATH.") from None
    if not tensors:
        raise refused(path, "it holds no tensors", "Use a checkpoint written by the run, or --checkpoint PATH.")
    return path


def checkpoint(doc: dict[str, Any], run_dir: Path, which: str) -> Path:
    """The checkpoint predict loads: the run's own file inside RUN_DIR, the pretrained one the run
    recorded (by its sha256), or a path the caller gave; verified as a plain state dict."""
    out, source = _section(doc, "output"), run_dir / "output.json"
    if which not in ("recommended", "pretrained"):
        path = Path(which).expanduser()
        if not path.is_file():
            raise ArgumentError(f"--checkpoint {which}: {path} is not a file.",
                                fix=["Use --checkpoint recommended or pretrained for the run's own, or a .pt path."])
        return plain_state_dict(path.resolve())
    recorded = out.get("recommended_ckpt" if which == "recommended" else "pretrained_ckpt")
    if not isinstance(recorded, str) or not recorded:
        raise refused(source, f"it records no {which} checkpoint", "Use --checkpoint PATH.")
    inside = _rerooted(recorded, str(_section(doc, "invocation").get("cwd") or ""), run_dir)
    if inside is not None:
        real = inside.resolve()
        if not real.is_file() or not real.is_relative_to(run_dir.resolve()):
            raise refused(inside, f"the {which} checkpoint is not a file inside the run folder {run_dir}",
                          "Copy the whole run folder (checkpoints/ included), or pass --checkpoint PATH.")
        return plain_state_dict(real)
    return plain_state_dict(_pretrained_outside(doc, Path(recorded), which))


def _pretrained_outside(doc: dict[str, Any], recorded: Path, which: str) -> Path:
    """A checkpoint outside the run (the pretrained weights): used only when its bytes are the ones the run
    recorded, so a moved folder never picks up whatever now lies at the old path."""
    weights = _section(_section(doc, "input"), "pretrained_weights")
    digest = weights.get("sha256")
    if recorded.is_file() and isinstance(digest, str) and sha256_file(recorded) == digest:
        return recorded
    raise ArgumentError(f"the run's {which} checkpoint {recorded} lies outside the run folder and is not the file "
                        "the run recorded (missing here, or other bytes than its sha256).",
                        fix=["Pass the pretrained weights the run used: --checkpoint PATH."])


def network_class(target: Any) -> bool:
    """Whether a `_target_` names a MONAI network class (never a function, never a module's import)."""
    match = NETWORK_CLASS.fullmatch(target) if isinstance(target, str) else None
    if match is None:
        return False
    if match.group(2) is None:
        return True
    spec = importlib.util.find_spec("monai")  # finds the package without importing it
    root = Path(spec.origin).parent if spec and spec.origin else None
    return root is not None and (root / "networks" / match.group(1) / f"{match.group(2)}.py").is_file()


def _code_in(value: Any, where: str, refs: set[str], targets_allowed: bool) -> str | None:
    """Why `value` is not a plain network definition (None when it is); collects its `@` references."""
    if isinstance(value, str):
        if value.startswith(("$", "%")):
            return f"{where} is {value[:60]!r}, a {'code expression' if value[0] == '$' else 'macro'}"
        if value.startswith("@"):
            match = REFERENCE.fullmatch(value)
            if not match:
                return f"{where} is {value[:60]!r}, not a reference to a plain top-level value"
            refs.add(match.group(1))
        return None
    if isinstance(value, list):
        return next((why for i, item in enumerate(value)
                     if (why := _code_in(item, f"{where}[{i}]", refs, targets_allowed))), None)
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "_target_" and targets_allowed:
                if not network_class(item):
                    return f"{where}._target_ is {str(item)[:60]!r}, not a MONAI network class"
            elif key.startswith("_") or "#" in key:
                return f"{where} has the key {key[:40]!r}, which the bundle treats as an instruction"
            elif why := _code_in(item, f"{where}.{key}", refs, targets_allowed):
                return why
    return None


def network(run_dir: Path) -> dict[str, Any] | None:
    """The run's network definition, when it had one, as checked data (predict writes its own copy)."""
    path = run_dir / NETWORK
    if not path.exists():
        return None
    fix = "Pass the run's network config yourself only if you trust it; a run folder may not carry code."
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise refused(path, f"it is not readable JSON ({type(exc).__name__})", fix) from None
    if not isinstance(config, dict) or not isinstance(config.get("network_def"), dict):
        raise refused(path, "it has no network_def object", fix)
    refs: set[str] = set()
    why = _code_in(config["network_def"], "network_def", refs, targets_allowed=True)
    extra = sorted(set(config) - {"network_def"} - refs)
    if why is None and extra:
        why = f"it sets {', '.join(extra[:5])}, which the network definition does not use"
    for name in sorted(refs & set(config)):
        why = why or _code_in(config[name], name, set(), targets_allowed=False)
        if why is None and isinstance(config[name], dict):
            why = f"{name} is an object, not a plain value"
    if why:
        raise refused(path, why, fix)
    return config


def bundle(doc: dict[str, Any], given: Path | None) -> Path:
    """The bundle predict drives: --bundle-dir, else the one the run's recorded source names by this tool's rule."""
    if given is not None:
        return bundle_source.bundle_dir(given)
    recorded = _section(_section(doc, "input"), "bundle")
    source = recorded.get("source")
    if source == "builtin":
        return bundle_source.BUILTIN
    if source == "hub":  # the model's own hub bundle (inputs/family.py); runs before the model axis were NV-Segment-CT's
        return bundle_source.hub_snapshot(download=False, spec=MODELS.get(str(recorded.get("model") or CT), MODELS[CT]))
    raise ArgumentError(f"the run used its own bundle ({str(recorded.get('path'))[:200]}), which predict does not "
                        "take from the run's record.",
                        fix=["Pass the bundle you trust: --bundle-dir DIR (the same recipe the run used)."])
