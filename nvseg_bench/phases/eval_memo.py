"""The formal evaluation of the pretrained checkpoint, kept for the next run that would repeat it.

eval_pretrained scores the start checkpoint on the fold-0 cases; nothing in it depends on the seed,
the learning rate or the epochs. So the next run with the same checkpoint bytes, the same case bytes,
the same eval command and config stack (by content, the output dir aside), the same bundle code, the
same package versions and the same device takes its outputs (predictions, metrics, log, figures)
instead of scoring again, as the phases of a seed sweep already share one evaluation. Kept under the
preprocessing cache root (`evaluations/KEY/`), written whole or not at all, off with
--no-preprocess-cache. A damaged entry is ignored and written again.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from nvseg_bench.phase_names import EVAL_PRETRAINED
from nvseg_bench.store import limits as cache_store
from nvseg_bench.phases.logparse import parse_lines
from nvseg_bench.paths import phase_log
from nvseg_bench.phases.runner import PhaseResult
from nvseg_bench.prepared import Prepared
from nvseg_bench.stage import overrides

PHASE = EVAL_PRETRAINED  # the one phase whose result is memoised
KEPT = cache_store.EVALUATIONS  # ROOT/evaluations/KEY/
RESULT = "result.json"
# the phase's figures kept beside its files, as PhaseResult names them
FIGURES = ("seconds", "peak_gpu_mb", "peak_rss_mb", "gpu", "log_tail", "arrivals", "start")
BUNDLE_CODE = ("configs", "scripts")  # what of the bundle the eval phase executes; models/ is the checkpoint's


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _bundle_code(bundle_dir: Path) -> dict[str, str]:
    files = sorted(f for sub in BUNDLE_CODE for f in (bundle_dir / sub).rglob("*")
                   if f.is_file() and "__pycache__" not in f.parts)
    return {str(f.relative_to(bundle_dir)): _sha(f.read_bytes()) for f in files}


def _config_digest(path: Path, out_dir: Path) -> str:
    """A config's content with the output dir masked; the overrides this tool staged lose the training-only
    values, which the eval phase carries in its stack but never reads."""
    text = path.read_text()
    if path.parent == out_dir / "configs" and path.suffix == ".json":
        values = json.loads(text)
        if isinstance(values, dict):
            ignored = overrides.training_only()
            text = json.dumps({k: v for k, v in values.items() if k not in ignored}, sort_keys=True)
    return _sha(text.replace(str(out_dir), "<OUT>").encode())


def key(p: Prepared) -> str | None:
    """What the evaluation's outcome depends on, hashed; None when a fold-0 file has no known digest."""
    out = str(p.out_dir)
    cases = []
    for entry in (e for e in p.entries if e.get("fold") == 0):
        paths = [str(p.dataset_dir / entry[k]) for k in ("image", "label")]
        if any(path not in p.digests for path in paths):
            return None
        cases.append([entry["image"], entry["label"], *(p.digests[path] for path in paths)])
    material = {
        "command": [arg.replace(out, "<OUT>") for arg in p.commands[PHASE]],
        "configs": [_config_digest(Path(f), p.out_dir) for f in p.staged.eval_stack],
        "bundle_code": _bundle_code(p.bundle_dir),
        "checkpoint": p.weights.sha256,
        "cases": sorted(cases),
        "packages": p.env.get("packages"),
        "device": [p.plan.device, p.env.get("gpu_name")],
    }
    return _sha(json.dumps(material, sort_keys=True).encode())[:24]


def recall(root: Path, found_key: str, p: Prepared) -> tuple[PhaseResult, str] | None:
    """The kept evaluation copied into OUT, as the phase's result, and the run dir that made it; None when
    there is none or it is damaged."""
    kept = root / KEPT / found_key
    try:
        saved = json.loads((kept / RESULT).read_text())
        log_text = (kept / "phase.log").read_text()
        if saved.get("return_code") != 0 or not (kept / PHASE).is_dir():
            return None
    except (OSError, ValueError):
        return None
    cache_store.touch(kept)  # recently used: the last to go when the cache needs room
    shutil.copytree(kept / PHASE, p.out_dir / PHASE, dirs_exist_ok=True)
    log_path = phase_log(p.out_dir, PHASE)
    log_path.write_text(log_text)
    facts = parse_lines(log_text.splitlines())
    kept_result = PhaseResult(name=PHASE, command=p.commands[PHASE], log_path=str(log_path), return_code=0,
                              facts=facts, reused_from=found_key, **{k: saved[k] for k in FIGURES})
    return kept_result, str(saved.get("run_dir"))


def keep(root: Path, found_key: str, result: PhaseResult, p: Prepared) -> None:
    """Store a successful evaluation for later runs; a failure to store is only a missed saving."""
    target = root / KEPT / found_key
    if result.return_code != 0 or target.is_dir():
        return
    staging = None
    try:
        (root / KEPT).mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=root / KEPT, prefix=f".{found_key}."))
        shutil.copytree(p.out_dir / PHASE, staging / PHASE)
        shutil.copy2(result.log_path, staging / "phase.log")
        saved: dict[str, Any] = {k: getattr(result, k) for k in FIGURES}
        saved |= {"return_code": result.return_code, "run_dir": str(p.out_dir)}
        (staging / RESULT).write_text(json.dumps(saved, indent=1) + "\n")
        os.replace(staging, target)  # whole or not at all; a concurrent run that won the race keeps its copy
        cache_store.touch(target)
    except OSError:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
