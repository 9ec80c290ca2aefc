"""Paths and helpers the test modules share (test files import from here, never from conftest.py)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from nvseg_bench.evidence.collect import write_manifest
from nvseg_bench.inputs.request import Request
from nvseg_bench.inputs.resolve import MappingAsk, resolve

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "fixtures" / "spleen_micro"
PACKS = Path(__file__).resolve().parent / "packs"
DATA = Path(__file__).resolve().parent / "data"
GATE_MODULE = "from nvseg_bench.harness.gate_items import test_gate  # noqa: F401\n"


def tree_digest(root: Path) -> str:
    """sha256 over every file's path and bytes: any write under root changes it."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def materialize_pack(name: str, dest: Path) -> Path:
    """A stored pack (tests/packs/<name>, made by tests/packs/make_packs.py) as a run dir at dest.

    The stored output.json and manifest inputs say @PACK@ and @REPO@ where the run had its own
    paths; here they become dest and this checkout, and the manifest's file hashes are taken anew.
    """
    shutil.copytree(PACKS / name, dest)
    fill = lambda text: text.replace("@PACK@", str(dest)).replace("@REPO@", str(REPO))  # noqa: E731
    (dest / "output.json").write_text(fill((dest / "output.json").read_text()))
    inputs = json.loads(fill((dest / "manifest.json").read_text()))["inputs"]
    (dest / "manifest.json").unlink()
    write_manifest(dest, inputs)
    return dest


def smoke_boundary(pack_dir: Path) -> dict:
    """output.boundary for a materialized smoke pack (stored before boundary metrics), as its run would write
    it: evidence/boundary.py over the pack's own predictions and the fixture's labels, tolerance 2 mm."""
    from nvseg_bench.evidence import boundary
    from nvseg_bench.evidence.per_class import MappedClass

    entries = json.loads((FIXTURE / "datalist.json").read_text())["training"]
    return boundary.boundary_block(pack_dir, boundary.label_index(FIXTURE, entries, None),
                                   (MappedClass("spleen", 1, 3),), 2.0)


def fake_nvidia_smi(tmp_path: Path, monkeypatch, lines: list[str]) -> Path:
    """Put an `nvidia-smi` on PATH that prints `lines` (CSV rows, as the real one with --format=csv)."""
    fake = tmp_path / "bin" / "nvidia-smi"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n" + "".join(f"echo '{line}'\n" for line in lines))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    return fake


def asked(label_mapping: str | None = None, anatomy: str | None = None, local: int | None = None) -> MappingAsk:
    """The mapping as the resolver decides it from these flags (the precedence lives there)."""
    req = Request(output_dir=Path("out"), label_mapping=label_mapping, target_anatomy=anatomy, user_label_idx=local)
    return resolve(req, {}, "finetune").mapping


@dataclass(frozen=True)
class PreparedStandIn:
    """The fields of prepared.Prepared that tracking's session.start reads, for tests that need no real run."""

    request: object
    staged: object
    commands: dict
    out_dir: Path
