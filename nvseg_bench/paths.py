"""Where things are: this package's data files, the bundle and fixtures (a checkout's, or the copy a wheel
carries), and the environment variable that names the Task06 dataset. Every path another module needs is
named here once, the member folders of a seed sweep and a CV included; setup.py reads SHIPPED_PARTS and SHIPPED_DIR from this file to build the wheel's copy."""
from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
REPO = PACKAGE.parent  # a source checkout or an editable install: bundle/ and fixtures/ sit beside the package
DATA = PACKAGE / "data"  # reference ranges, the anatomy table, the vista3d132 tensor layout
SCHEMA = PACKAGE / "schema"  # output.json's schema, the peer skill's restatement, the skill manifest's
# What a wheel carries besides the code, relative to the checkout: the offline stand-in bundle, the micro
# fixture and the micro model (about 2 MB). The build copies them to PACKAGE/SHIPPED_DIR (setup.py); a checkout
# never holds that copy (.gitignore), so the checkout's folders stay the one source of truth.
SHIPPED_PARTS = ("bundle", "fixtures/spleen_micro", "fixtures/micro_model")
SHIPPED_DIR = "shipped"
SHIPPED = PACKAGE / SHIPPED_DIR
HOME = SHIPPED if SHIPPED.is_dir() else REPO  # an installed wheel's copy, else the checkout
BUILTIN_BUNDLE = HOME / "bundle"  # the offline stand-in bundle (the smoke preset's micro model needs it)
FIXTURES = HOME / "fixtures"
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


def seed_dir(out_dir: Path, seed: int) -> Path:
    """A seed sweep's member run for `seed` (campaign/seeds.py)."""
    return out_dir / f"seed-{seed}"


def fold_dir(out_dir: Path, fold: int) -> Path:
    """A cross-validation's member run for `fold` (campaign/folds.py)."""
    return out_dir / f"fold-{fold}"


CV_FILE = "cv.json"  # OUT/cv.json: a cross-validation's pooled figures and its folds
SWEEP_FILE = "sweep.json"  # OUT/sweep.json: a seed sweep's gains and its recommendation
