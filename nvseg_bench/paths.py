"""Where things are: this package's data files, the repository's bundle and fixtures, and the environment
variable that names the Task06 dataset. Every path another module needs is named here once."""
from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
REPO = PACKAGE.parent  # a source checkout or an editable install: bundle/ and fixtures/ sit beside the package
DATA = PACKAGE / "data"  # reference ranges, the anatomy table, the vista3d132 tensor layout
SCHEMA = PACKAGE / "schema"  # output.json's schema, the peer skill's restatement, the skill manifest's
BUILTIN_BUNDLE = REPO / "bundle"  # the offline stand-in bundle (the smoke preset's micro model needs it)
FIXTURES = REPO / "fixtures"
SHIPPED_FIXTURE = FIXTURES / "spleen_micro"  # what --smoke runs on by default
TASK06_ENV = "NVSEG_TASK06_DIR"  # where --sanity (and the harness's sanity run) finds MSD Task06_Lung
LOGS = "logs"  # OUT/logs/NAME.log: each phase's console output


def is_inside(path: Path, folder: Path) -> bool:
    """Whether path is folder or lies below it, after resolving links and '..'."""
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def phase_log(out_dir: Path, name: str) -> Path:
    """Where phase `name` of the run in out_dir writes its log."""
    return out_dir / LOGS / f"{name}.log"
