"""The package's folders follow the flow, and no import climbs back up it: a module imports only from its own
folder or from folders earlier in the flow (the CLI and the harness sit on top)."""
from __future__ import annotations

import ast

from ..helpers import REPO

FLOW = ("paths", "phase_names", "errors", "store", "inputs", "planning", "model", "stage", "prepared", "phases", "evidence",
        "output", "tracking", "run_folder", "predict", "prepare", "run", "campaign", "history", "references",
        "commands", "cli", "__main__",
        "harness")


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "nvseg_bench" and len(parts) > 1 else None


def _imports(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("nvseg_bench"):
            found.append(node.module)
            if node.module == "nvseg_bench":
                found += [f"nvseg_bench.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.startswith("nvseg_bench")]
    return found


def test_every_folder_and_top_level_module_has_its_place_in_the_flow():
    package = REPO / "nvseg_bench"
    present = {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    present |= {p.name for p in package.iterdir() if (p / "__init__.py").is_file()}
    assert present == set(FLOW)


def test_no_import_climbs_back_up_the_flow():
    climbs = []
    for path in sorted((REPO / "nvseg_bench").rglob("*.py")):
        module = ".".join(path.relative_to(REPO).with_suffix("").parts)
        mine = _layer(module)
        for target in _imports(ast.parse(path.read_text())):
            theirs = _layer(target)
            if mine in FLOW and theirs in FLOW and FLOW.index(theirs) > FLOW.index(mine):
                climbs.append(f"{module} imports {target}")
    assert climbs == []
