"""docs/design.md's Layout section names every module of the package and the verifier, under its own folder's heading."""
from __future__ import annotations

import re

from ..helpers import REPO

PACKAGES = ("nvseg_bench", "eval_engine")


def layout_sections() -> dict[str, str]:
    """Folder heading (`nvseg_bench/stage/`) -> the text under it, from docs/design.md's `## Layout`."""
    text = (REPO / "docs" / "design.md").read_text()
    layout = text.split("\n## Layout", 1)[1].split("\n## ", 1)[0]
    parts = re.split(r"^### `([^`]+)`.*$", layout, flags=re.M)
    return {parts[i].rstrip("/") + "/": parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def test_every_module_is_named_under_its_folder_in_the_layout_section():
    sections = layout_sections()
    modules = sorted(p.relative_to(REPO) for package in PACKAGES for p in (REPO / package).rglob("*.py")
                     if "__pycache__" not in p.parts)
    missing = [str(m) for m in modules
               if f"`{m.name}`" not in sections.get(m.parent.as_posix() + "/", "")]
    assert len(modules) > 60 and missing == []
