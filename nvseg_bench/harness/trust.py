"""Trusted mode: the CPU verifier judges a run's evidence pack in a process of its own.

`python -m eval_engine.run_trusted --pack RUN --out RUN` writes trust_summary.json beside the run's
output.json; the harness never imports the verifier, it reads that file. A result is kept with the
run's cache entry together with a digest of every pack file, and re-used while those digests hold.

The digest of output.json leaves out its `gates` section: the harness writes that section itself
after the gate items, and the verifier does not hash output.json (the pack's manifest lists every
other file), so that write never makes a pack look edited. The verifier's own two files are left
out too. A pack that changed after its run fails the `trusted` gate by itself, whatever the
verifier finds: only the harness knows what the pack looked like when the run ended.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nvseg_bench import paths
from nvseg_bench.harness.cache import DigestMemo

SUMMARY = "trust_summary.json"
VERIFIER_FILES = {SUMMARY, "trust_summary.md"}
VERIFIER = "eval_engine.run_trusted"
MANIFEST = "manifest.json"


@dataclass
class Trust:
    """The verifier's verdict on one pack, as the `trusted` gate and the report read it."""

    verdict: str  # passed | warn | failed | error (the verifier could not judge)
    failed: list[str] = field(default_factory=list)  # "check: detail" of each failed finding
    warnings: list[str] = field(default_factory=list)
    summary: str = ""  # path of trust_summary.json
    source: str = "ran"  # ran (this session) | cache (the pack's files were unchanged)
    digests: dict[str, str] = field(default_factory=dict)  # the pack as the verifier saw it
    changed: list[str] = field(default_factory=list)  # files that differ from the pack the run left

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Trust:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    def properties(self) -> list[tuple[str, str]]:
        """The JUnit properties of the `trusted` item; the ledger reads them back with from_properties."""
        return [("nvseg_trust_verdict", self.verdict), ("nvseg_trust_summary", self.summary),
                ("nvseg_trust_failed", json.dumps(self.changed + self.failed)),
                ("nvseg_trust_warnings", json.dumps(self.warnings))]

    @classmethod
    def from_properties(cls, props: dict[str, Any]) -> Trust | None:
        if "nvseg_trust_verdict" not in props:
            return None
        return cls(props["nvseg_trust_verdict"], json.loads(props.get("nvseg_trust_failed") or "[]"),
                   json.loads(props.get("nvseg_trust_warnings") or "[]"), props.get("nvseg_trust_summary", ""))


def output_digest(path: Path) -> str:
    """sha256 of output.json as the run wrote it: without the `gates` section the harness adds."""
    try:
        doc = json.loads(path.read_text())
    except ValueError:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    if isinstance(doc, dict):
        doc.pop("gates", None)
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def pack_digests(root: Path, memo: DigestMemo) -> dict[str, str]:
    """One digest per pack file (relative path), and per input the manifest names outside the pack."""
    digests = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel in VERIFIER_FILES or path.name.startswith(".output.json."):
            continue
        digests[rel] = output_digest(path) if rel == "output.json" else memo.file(path)
    try:
        inputs = json.loads((root / MANIFEST).read_text()).get("inputs") or {}
    except (OSError, ValueError, AttributeError):
        inputs = {}
    ckpt = Path(str((inputs.get("pretrained_ckpt") or {}).get("path", "")))
    if ckpt.name and ckpt.is_file():
        digests[f"input: {ckpt}"] = memo.file(ckpt)
    memo.save()
    return digests


def changed_files(before: dict[str, str], now: dict[str, str]) -> list[str]:
    """What differs: 'output.json changed', 'models/model.pt missing', 'x added'."""
    said = []
    for name in sorted(before.keys() | now.keys()):
        if name not in now:
            said.append(f"{name} missing")
        elif name not in before:
            said.append(f"{name} added")
        elif before[name] != now[name]:
            said.append(f"{name} changed")
    return said


def verifier_env() -> dict[str, str]:
    """The verifier runs on the CPU, with this process's import path (the project may not be installed)."""
    here = str(paths.PACKAGE.parent)
    path = os.environ.get("PYTHONPATH")
    return dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1",
                PYTHONPATH=here if not path else f"{here}{os.pathsep}{path}")


def run_verifier(pack: Path) -> Trust:
    """Run the verifier on the pack; read trust_summary.json it leaves beside output.json."""
    command = [sys.executable, "-m", VERIFIER, "--pack", str(pack), "--out", str(pack)]
    summary = pack / SUMMARY
    summary.unlink(missing_ok=True)  # a stale summary must never stand for this verdict
    started = time.monotonic()
    proc = subprocess.run(command, capture_output=True, text=True, env=verifier_env(), cwd=str(pack.parent))
    if not summary.is_file():
        said = " ".join((proc.stderr or proc.stdout).strip().splitlines()[-4:])
        return Trust("error", [f"verifier: `{' '.join(command)}` exited {proc.returncode} after "
                               f"{time.monotonic() - started:.1f} s and wrote no {SUMMARY}: {said}"])
    data = json.loads(summary.read_text())
    findings = data.get("findings") or []
    pick = lambda status: [f"{f.get('name')}: {f.get('detail')}" for f in findings if f.get("status") == status]  # noqa: E731
    return Trust(str(data.get("verdict", "error")), pick("fail"), pick("warn"), str(summary))


def judge_pack(pack: Path, memo: DigestMemo, at_run_end: dict[str, str] | None,
               kept: dict[str, Any] | None) -> Trust:
    """The pack's trust: the kept result while the pack is as the verifier saw it, else a fresh one.

    `at_run_end` is the pack's digests when its run finished (None for a pack the harness did
    not run); any difference from them is named in `changed`.
    """
    now = pack_digests(pack, memo)
    old = Trust.from_json(kept) if kept else None
    if old is not None and old.digests == now and old.verdict != "error" and Path(old.summary).is_file():
        trust = old
        trust.source = "cache"
    else:
        trust = run_verifier(pack)
        trust.digests = now
    trust.changed = changed_files(at_run_end, now) if at_run_end is not None else []
    return trust
