"""The verifier's two output files, trust_summary.json and trust_summary.md, written only under --out.

Every write is atomic (a temporary file in the same folder, then os.replace), so a reader never sees
half a summary. A link at --out itself or at either summary path is refused
(OutputRefused), never followed: a pack that holds `trust_summary.md` as a link to a file elsewhere
cannot have that file overwritten. Strings that come from the pack are escaped in the Markdown
(newlines, `|`, link and HTML syntax), so a finding's detail cannot forge rows or links.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

JSON_NAME, MD_NAME = "trust_summary.json", "trust_summary.md"
MD_SPECIAL = re.compile(r"([\\`*_\[\]()<>|#!])")


class OutputRefused(Exception):
    """--out, or a path the verifier would write, is a link (or not a folder)."""


def check_out(out: Path) -> None:
    """Refuse an --out that is a link or a file, and a link at either summary path, before writing anything."""
    if out.is_symlink():
        raise OutputRefused(f"--out {out} is a symbolic link; the verifier writes into no link")
    for name in (JSON_NAME, MD_NAME):
        if (out / name).is_symlink():
            raise OutputRefused(f"{out / name} is a symbolic link; the verifier replaces no link and writes through none")
    if out.exists() and not out.is_dir():
        raise OutputRefused(f"--out {out} exists and is not a folder")


def write_atomic(path: Path, text: str) -> None:
    """Write text to path through a temporary file in the same folder; a link at path is refused."""
    if path.is_symlink():
        raise OutputRefused(f"{path} is a symbolic link; the verifier replaces no link and writes through none")
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def md_escape(text: Any) -> str:
    """A pack string as one Markdown table cell's text: one line, no table, link or HTML syntax."""
    flat = " ".join(str(text).splitlines())
    return MD_SPECIAL.sub(r"\\\1", flat)


def markdown(summary: dict[str, Any]) -> str:
    head = summary["verdict_line"]
    lines = [f"# Trust summary: {summary['verdict']}", "", md_escape(head), "",
             f"Pack {md_escape(summary['pack'])} ({summary['mode']} mode), verifier {summary['verifier']['version']}, "
             f"{summary['time']}, {summary['seconds']:.1f} s.", "",
             "| check | status | detail |", "| --- | --- | --- |"]
    lines += [f"| {md_escape(f['name'])} | {f['status']} | {md_escape(f['detail'])} |" for f in summary["findings"]]
    return "\n".join(lines) + "\n"


def write(out: Path, summary: dict[str, Any]) -> Path:
    """Both summaries under out (made if missing); returns the JSON's path."""
    check_out(out)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / JSON_NAME, json.dumps(summary, indent=2, default=str) + "\n")
    write_atomic(out / MD_NAME, markdown(summary))
    return out / JSON_NAME
