"""An evidence pack: a run's output directory, read once, with every file read recorded.

Everything in a pack is untrusted data. Paths in output.json are absolute where the run wrote them; a
pack copied to another machine keeps its layout, so a path is re-rooted onto the pack when it pointed
inside the original run dir, and a relative path resolves against the pack, never the working
directory. Whether a located path stays inside the pack (no `..`, no link out) is `inside`; the
integrity checks fail a pack whose paths leave it.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


class PackError(Exception):
    """The pack cannot be audited at all (no output.json, not JSON)."""


@dataclass
class Pack:
    root: Path
    output: dict[str, Any]
    manifest: dict[str, Any] | None
    read: dict[str, str] = field(default_factory=dict)  # files read -> sha256 at the time

    @property
    def original_root(self) -> str:
        return str((self.output.get("invocation") or {}).get("cwd") or self.root)

    def locate(self, recorded: str | None) -> Path | None:
        """Where a path recorded in output.json is now: re-rooted onto the pack if it was inside the run."""
        if not recorded:
            return None
        path = Path(recorded)
        if not path.is_absolute():
            return self.root / path
        try:
            return self.root / path.relative_to(self.original_root)
        except ValueError:
            return path

    def inside(self, path: Path) -> bool:
        root = self.root.resolve()
        resolved = path.resolve()
        return resolved == root or root in resolved.parents

    def note(self, path: Path) -> None:
        if path.is_file():
            self.read[str(path)] = sha256_file(path)


def load_pack(root: Path) -> Pack:
    out_path = root / "output.json"
    if not out_path.is_file():
        raise PackError(f"{root} has no output.json; pass the output dir of an nvseg-finetune run.")
    try:
        output = json.loads(out_path.read_text())
    except json.JSONDecodeError as exc:
        raise PackError(f"{out_path} is not valid JSON ({exc}).") from None
    manifest_path = root / "manifest.json"
    manifest = None
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text())
        except json.JSONDecodeError:
            manifest = {"unreadable": True}
    pack = Pack(root=root, output=output, manifest=manifest)
    pack.note(out_path)
    pack.note(manifest_path)
    return pack
