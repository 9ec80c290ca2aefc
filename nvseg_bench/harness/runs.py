"""The three runs the harness knows, how each becomes an nvseg-finetune command, and running it.

smoke: the shipped spleen_micro fixture with --smoke (CPU, about 90 s).
sanity: MSD Task06 with --sanity (one GPU; needs --gpu and --nvseg-task06).
user: the caller's dataset (needs --nvseg-dataset).
A run is always `python -m nvseg_bench ... --output-dir DIR` in a subprocess, exactly as a user
would start it; this module never trains, and never imports torch or monai.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..preset import read_fixture_card
from .options import HarnessOptions
from .trust import Trust

REPO = Path(__file__).resolve().parents[2]
SMOKE_FIXTURE = REPO / "fixtures" / "spleen_micro"
DEFAULT_BUNDLE = REPO / "bundle"
RUN_NAMES = ("smoke", "sanity", "user")
REFERENCE = {"smoke": "spleen_micro", "sanity": "task06", "user": None}
CONSOLE_TAIL = 80


class RunSkipped(Exception):
    """This run cannot happen in this session; the message says what would enable it."""


@dataclass
class RunSpec:
    name: str
    args: list[str]  # everything but --output-dir
    inputs: dict[str, Path | None]  # what the cache key hashes
    uses_gpu: bool
    reference: str | None


@dataclass
class RunEvidence:
    """A finished run as the gates see it: where its evidence is and how it was obtained."""

    name: str
    out: Path
    returncode: int
    wall_seconds: float
    console_tail: list[str]
    source: str  # "ran" (this process), "shared" (another xdist worker, this session), "cache", "pack"
    key: str
    finished_at: str
    inputs_unchanged: bool | None  # None: not known (a pack judged as found)
    reference: str | None
    args: list[str] = field(default_factory=list)
    trust: Trust | None = None  # the verifier's verdict, in trusted mode
    _doc: dict[str, Any] | None = None

    @property
    def doc(self) -> dict[str, Any] | None:
        """output.json, or None when the run wrote none (bad input: see console_tail)."""
        if self._doc is None:
            path = self.out / "output.json"
            if path.is_file():
                self._doc = json.loads(path.read_text())
        return self._doc

    def locate(self, recorded: str | None) -> Path | None:
        """A path output.json recorded, re-rooted onto this run dir when it lay inside the dir the
        run wrote (invocation.cwd): a pack copied elsewhere is judged on its own files."""
        if not recorded:
            return None
        original = ((self.doc or {}).get("invocation") or {}).get("cwd")
        try:
            return self.out / Path(recorded).relative_to(original) if original else Path(recorded)
        except ValueError:
            return Path(recorded)

    @classmethod
    def from_entry(cls, entry: dict[str, Any], source: str) -> RunEvidence:
        fields = {k: entry[k] for k in ("name", "returncode", "wall_seconds", "console_tail", "key",
                                        "finished_at", "inputs_unchanged", "reference", "args")}
        trust = Trust.from_json(entry["trust"]) if entry.get("trust") else None
        return cls(out=Path(entry["out"]), source=source, trust=trust, **fields)

    @classmethod
    def from_pack(cls, name: str, pack: Path, doc: dict[str, Any]) -> RunEvidence:
        """A pack judged as found (--nvseg-trusted-only): nothing about how it ran is known but itself."""
        runtime = doc.get("runtime") or {}
        code = runtime.get("return_code")
        return cls(name, pack, code if isinstance(code, int) else 0, float(runtime.get("wall_seconds") or 0), [],
                   "pack", "", str(doc.get("finished_at", "")), None, REFERENCE.get(name), [], _doc=doc)


def pack_run_name(doc: dict[str, Any]) -> str:
    """Which run a pack is: its plan's preset (smoke or sanity), else the user run."""
    preset = (doc.get("plan") or {}).get("preset")
    return preset if preset in ("smoke", "sanity") else "user"


def skip_reason(name: str, opts: HarnessOptions, gpu_count: int) -> str | None:
    if name == "smoke" and not SMOKE_FIXTURE.is_dir():
        return f"the shipped fixture {SMOKE_FIXTURE} is not here; run from a source checkout of nvseg-bench"
    if name == "sanity":
        if not opts.gpu:
            return "the sanity run needs a GPU: pass --gpu (and --nvseg-task06=DIR)"
        if opts.task06 is None:
            return "no Task06 data: pass --nvseg-task06=DIR or set NVSEG_TASK06_DIR"
        if gpu_count == 0:
            return "--gpu was given, but nvidia-smi sees no CUDA GPU on this machine"
    if name == "user" and opts.dataset is None:
        return "no user dataset: pass --nvseg-dataset=DIR (see --help, group nvseg-bench)"
    return None


def _model_inputs(dataset: Path | None, opts: HarnessOptions, own: bool) -> dict[str, Path | None]:
    """The checkpoint and network config the run starts from: flags (user run) or the fixture card."""
    card = read_fixture_card(dataset) if dataset is not None and dataset.is_dir() else {}
    ckpt = opts.pretrained_ckpt if own else None
    network = opts.network_config if own else None
    return {"pretrained checkpoint": ckpt or (Path(card["pretrained_ckpt"]) if card.get("pretrained_ckpt") else None),
            "network config": network or (Path(card["network_config"]) if card.get("network_config") else None)}


def build_spec(name: str, opts: HarnessOptions) -> RunSpec:
    bundle = opts.bundle_dir or DEFAULT_BUNDLE
    if name == "smoke":
        dataset, args = SMOKE_FIXTURE, [str(SMOKE_FIXTURE), "--smoke"]
    elif name == "sanity":
        dataset, args = opts.task06, [str(opts.task06), "--sanity"]
    else:
        dataset, args = opts.dataset, ["--dataset-dir", str(opts.dataset)]
        for flag, value in (("--datalist", opts.datalist), ("--target-anatomy", opts.target_anatomy),
                            ("--label-mapping", opts.label_mapping), ("--pretrained-ckpt", opts.pretrained_ckpt),
                            ("--network-config", opts.network_config)):
            if value is not None:
                args += [flag, str(value)]
    if opts.bundle_dir is not None:
        args += ["--bundle-dir", str(opts.bundle_dir)]
    args += opts.args
    inputs = {"bundle": bundle, "dataset": dataset, "datalist": opts.datalist if name == "user" else None}
    inputs |= _model_inputs(dataset, opts, own=name == "user")
    return RunSpec(name, args, inputs, uses_gpu=opts.gpu, reference=REFERENCE[name])


def cli_env(uses_gpu: bool) -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if not uses_gpu:
        env["CUDA_VISIBLE_DEVICES"] = ""  # without --gpu a run must not touch a GPU, even on a GPU host
    return env


def run_cli(spec: RunSpec, out: Path, say: Callable[[str], None]) -> tuple[int, float, list[str]]:
    """Run the CLI; stream its progress lines; return (exit code, seconds, last console lines)."""
    command = [sys.executable, "-m", "nvseg_bench", *spec.args, "--output-dir", str(out)]
    tail: deque[str] = deque(maxlen=CONSOLE_TAIL)
    started = time.monotonic()
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=cli_env(spec.uses_gpu), cwd=str(out.parent)) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n").split("\r")[-1]
            tail.append(line)
            if line.startswith("[") or line.startswith("nvseg-finetune:"):
                say(f"  {spec.name}: {line.strip()}")
        returncode = proc.wait()
    return returncode, time.monotonic() - started, list(tail)
