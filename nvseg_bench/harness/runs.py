"""The three runs the harness knows, how each becomes an nvseg-finetune command, and running it.

smoke: the shipped spleen_micro fixture with --smoke (CPU, about 90 s).
sanity: MSD Task06 with --sanity (one GPU; needs --gpu and --nvseg-task06).
user: the caller's dataset (needs --nvseg-dataset).
A run is always `python -m nvseg_bench ... --output-dir DIR` in a subprocess, exactly as a user
would start it; this module never trains, and never imports torch or monai.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from nvseg_bench import paths
from nvseg_bench.phases.child import run_child
from nvseg_bench.errors import NvsegError
from nvseg_bench.harness.options import HarnessOptions
from nvseg_bench.harness.trust import Trust

REPO = paths.REPO
SMOKE_FIXTURE = paths.SHIPPED_FIXTURE
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
    tracking: list[str] = field(default_factory=list)  # --tracking VALUE: passed to the CLI, not in the cache key


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
        return (f"the shipped fixture {SMOKE_FIXTURE} is not here; reinstall nvseg-bench (its wheel ships the fixture) or run "
                "from a source checkout")
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


def model_inputs(args: list[str]) -> dict[str, Path | None]:
    """The checkpoint and network config a run starts from, as the run itself resolves them: the
    same arguments through the same parser, request and resolver (flag, else fixture card)."""
    from nvseg_bench.cli import build_parser
    from nvseg_bench.inputs.request import from_namespace
    from nvseg_bench.inputs.resolve import resolve_for

    none: dict[str, Path | None] = {"pretrained checkpoint": None, "network config": None}
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # the run itself reports bad arguments
            req = from_namespace(build_parser().parse_args([*args, "--output-dir", "unused"]))
        if req.dataset_dir is None or not req.dataset_dir.is_dir():
            return none
        resolved = resolve_for(req, req.dataset_dir)
    except (SystemExit, NvsegError):
        return none
    ckpt, network = resolved["pretrained_ckpt"], resolved["network_config"]
    return {"pretrained checkpoint": Path(ckpt) if ckpt else None, "network config": network}


def default_bundle(name: str) -> Path:
    """The bundle a run without --bundle-dir drives (bundle_source.choose), for the cache key; the cached hub
    snapshot for sanity and user runs, else the builtin one (the run itself then says what is missing)."""
    from nvseg_bench.model.bundle_source import BUILTIN, choose

    try:
        return choose(None, "smoke" if name == "smoke" else "finetune", download=False).path
    except NvsegError:
        return BUILTIN


def build_spec(name: str, opts: HarnessOptions) -> RunSpec:
    bundle = opts.bundle_dir or default_bundle(name)
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
    inputs |= model_inputs(args)
    return RunSpec(name, args, inputs, uses_gpu=opts.gpu, reference=REFERENCE[name], tracking=opts.tracking)


def cli_env(uses_gpu: bool) -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if not uses_gpu:
        env["CUDA_VISIBLE_DEVICES"] = ""  # without --gpu a run must not touch a GPU, even on a GPU host
    return env


def run_cli(spec: RunSpec, out: Path, say: Callable[[str], None]) -> tuple[int, float, list[str]]:
    """Run the CLI; stream its progress lines; return (exit code, seconds, last console lines)."""
    command = [sys.executable, "-m", "nvseg_bench", *spec.args, *spec.tracking, "--output-dir", str(out)]

    def on_line(line: str) -> None:
        line = line.split("\r")[-1]
        if line.startswith("[") or line.startswith("nvseg-finetune:"):
            say(f"  {spec.name}: {line.strip()}")

    run = run_child(command, cwd=out.parent, env=cli_env(spec.uses_gpu), on_line=on_line, tail_lines=CONSOLE_TAIL)
    return run.return_code if run.return_code is not None else 1, run.seconds, [line.split("\r")[-1] for line in run.tail]
