"""The facts the code cites live in the repository: docs/ exists for every citation, and nothing
points at design notes outside the checkout."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from ..helpers import REPO

THIS_FILE = Path(__file__).resolve().relative_to(REPO).as_posix()
OUTSIDE = re.compile(r"DESIGN\.md|\.\./shared|/work/shared")
DOC_CITATION = re.compile(r"\bdocs/[\w.-]+\.md\b")


def _tracked_text_files() -> dict[str, str]:
    try:
        names = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked files are unknown")
    texts = {}
    for name in names.splitlines():
        path = REPO / name
        if path.is_file() and path.suffix not in {".gz", ".pt", ".png"}:
            texts[name] = path.read_text(encoding="utf-8", errors="replace")
    return texts


def test_no_tracked_file_cites_design_notes_outside_the_repository():
    hits = [f"{name}: {m.group(0)}" for name, text in _tracked_text_files().items() if name != THIS_FILE
            for m in OUTSIDE.finditer(text)]
    assert hits == []


def test_every_docs_file_the_repository_cites_exists():
    cited = {m.group(0) for text in _tracked_text_files().values() for m in DOC_CITATION.finditer(text)}
    assert {"docs/design.md", "docs/task06-and-results.md"} <= cited
    assert sorted(c for c in cited if not (REPO / c).is_file()) == []
