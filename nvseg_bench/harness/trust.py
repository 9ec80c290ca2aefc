"""Trusted mode: the CPU verifier judges a run's evidence pack in a process of its own.

The harness starts the real verifier, never one the pack could supply: `python -I` (no PYTHONPATH, no
working directory or script folder on the import path) with the folder that holds this installation's
`eval_engine/` put first explicitly, in a working directory of the harness's own outside the pack. It
passes the dataset, datalist and pretrained checkpoint the harness itself used as trusted inputs
(TrustedInputs), and has the verifier write trust_summary.json into that folder (`--out`), never into
the pack: an audited pack is not written to. The harness never imports the verifier, it reads that
file. A result is kept with the run's cache entry together with the sha256 of every pack file (by
content: a `touch -r` after an edit does not hide it; the size+mtime memo is the run cache's, not
trust's), and re-used while those digests and the trusted inputs hold.

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
from nvseg_bench.store.files import sha256_file

SUMMARY = "trust_summary.json"
VERIFIER_FILES = {SUMMARY, "trust_summary.md"}
VERIFIER = "eval_engine.run_trusted"
MANIFEST = "manifest.json"
INPUTS_KEY = "trusted inputs"  # beside the pack's digests: a kept verdict also needs the same trusted inputs
ENGINE_HOME = paths.PACKAGE.parent  # the folder holding this installation's nvseg_bench/ and eval_engine/
# run under `python -I`: the import path gets the real eval_engine's folder first, from argv, and nothing else
LAUNCH = ("import sys; sys.path.insert(0, sys.argv.pop(1)); "
          "from eval_engine.run_trusted import main; raise SystemExit(main())")


@dataclass(frozen=True)
class TrustedInputs:
    """What the harness itself used for a run, passed to the verifier to score the pack against."""

    dataset: Path | None = None
    datalist: Path | None = None
    pretrained_ckpt: Path | None = None

    def args(self) -> list[str]:
        pairs = (("--dataset-dir", self.dataset), ("--datalist", self.datalist),
                 ("--pretrained-ckpt", self.pretrained_ckpt))
        return [item for flag, path in pairs if path is not None for item in (flag, str(path))]

    @classmethod
    def from_spec(cls, inputs: dict[str, Path | None], folds: bool = False) -> TrustedInputs:
        """From a RunSpec's inputs: what the run the harness started was given. A cross-validation's
        validation cases are its folds' own datalists (in the pack), not the datalist it was given."""
        return cls(inputs.get("dataset"), None if folds else inputs.get("datalist"), inputs.get("pretrained checkpoint"))


@dataclass
class Trust:
    """The verifier's verdict on one pack, as the `trusted` gate and the report read it."""

    verdict: str  # passed | warn | failed | unverified | error (the verifier could not judge)
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


def pack_digests(root: Path) -> dict[str, str]:
    """The sha256 of every pack file (relative path), and of the input the manifest names outside the pack."""
    digests = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel in VERIFIER_FILES or path.name.startswith(".output.json."):
            continue
        digests[rel] = output_digest(path) if rel == "output.json" else sha256_file(path)
    try:
        inputs = json.loads((root / MANIFEST).read_text()).get("inputs") or {}
    except (OSError, ValueError, AttributeError):
        inputs = {}
    ckpt = Path(str((inputs.get("pretrained_ckpt") or {}).get("path", "")))
    if ckpt.name and ckpt.is_file():
        digests[f"input: {ckpt}"] = sha256_file(ckpt)
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
    """The verifier runs on the CPU; `-I` ignores PYTHONPATH, so the import path is LAUNCH's alone."""
    return dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1")


def verifier_command(pack: Path, out: Path, given: TrustedInputs) -> list[str]:
    return [sys.executable, "-I", "-c", LAUNCH, str(ENGINE_HOME), "--pack", str(pack.resolve()),
            "--out", str(out.resolve()), *given.args()]


def _inside(path: Path, root: Path) -> bool:
    path, root = path.resolve(), root.resolve()
    return path == root or root in path.parents


def run_verifier(pack: Path, out: Path, given: TrustedInputs) -> Trust:
    """Run the real verifier on the pack, writing into out (the harness's folder, outside the pack)."""
    if not (ENGINE_HOME / "eval_engine" / "run_trusted.py").is_file():
        return Trust("error", [f"verifier: {ENGINE_HOME / 'eval_engine'} is not here; install nvseg-bench with it"])
    if _inside(out, pack):
        return Trust("error", [f"verifier: its output folder {out} lies inside the audited pack {pack}"])
    command = verifier_command(pack, out, given)
    out.mkdir(parents=True, exist_ok=True)
    summary = out / SUMMARY
    summary.unlink(missing_ok=True)  # a stale summary must never stand for this verdict
    started = time.monotonic()
    proc = subprocess.run(command, capture_output=True, text=True, env=verifier_env(), cwd=str(out))
    if not summary.is_file():
        said = " ".join((proc.stderr or proc.stdout).strip().splitlines()[-4:])
        return Trust("error", [f"verifier: `{' '.join(command)}` exited {proc.returncode} after "
                               f"{time.monotonic() - started:.1f} s and wrote no {SUMMARY}: {said}"])
    data = json.loads(summary.read_text())
    findings = data.get("findings") or []
    said = lambda f: f"{f.get('name')}{' (unverified)' if f.get('status') == 'unverified' else ''}: {f.get('detail')}"  # noqa: E731
    pick = lambda *statuses: [said(f) for f in findings if f.get("status") in statuses]  # noqa: E731
    return Trust(str(data.get("verdict", "error")), pick("fail", "unverified"), pick("warn"), str(summary))


def verify_pack(pack: Path, out: Path, given: TrustedInputs, at_run_end: dict[str, str] | None,
               kept: dict[str, Any] | None) -> Trust:
    """The pack's trust: the kept result while the pack and the trusted inputs are as the verifier saw
    them, else a fresh one written under out.

    `at_run_end` is the pack's digests when its run finished (None for a pack the harness did
    not run); any difference from them is named in `changed`.
    """
    weights = given.pretrained_ckpt
    now = pack_digests(pack) | {INPUTS_KEY: " ".join(given.args()) + (
        f" sha256 {sha256_file(weights)}" if weights is not None and weights.is_file() else "")}
    old = Trust.from_json(kept) if kept else None
    if old is not None and old.digests == now and old.verdict != "error" and Path(old.summary).is_file():
        trust = old
        trust.source = "cache"
    else:
        trust = run_verifier(pack, out, given)
        trust.digests = now
    files = lambda digests: {k: v for k, v in digests.items() if k != INPUTS_KEY}  # noqa: E731
    trust.changed = changed_files(files(at_run_end), files(now)) if at_run_end is not None else []
    return trust
