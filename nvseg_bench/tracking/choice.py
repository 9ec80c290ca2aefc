"""What `--tracking` asked for, checked before any phase: which trackers, and where MLflow writes.

`--tracking` is repeatable and takes comma-separated names: `mlflow`, `mlflow=URI`, `tensorboard`. MLflow's
store is the URI given, else $MLFLOW_TRACKING_URI, else a local store in `mlruns/` beside the output dir (no
server needed): an SQLite database, mlruns/mlflow.db, with the artifacts in mlruns/artifacts (MLflow 3 keeps
its plain-folder file store in maintenance mode and refuses it unless asked; a `file:` URI given is honoured).
Without the tracker's package the flag is refused (exit 2) naming the extra. Never imports mlflow.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from nvseg_bench.errors import ArgumentError

MLFLOW, TENSORBOARD = "mlflow", "tensorboard"
NAMES = (MLFLOW, TENSORBOARD)
URI_ENV = "MLFLOW_TRACKING_URI"
STORE_DIR, STORE_DB, ARTIFACTS = "mlruns", "mlflow.db", "artifacts"  # the default store, beside the output dir
EXPERIMENT = "nvseg-bench"  # the default experiment; $MLFLOW_EXPERIMENT_NAME wins
EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"


@dataclass(frozen=True)
class Tracking:
    """The trackers asked for; `mlflow_uri` is the URI given with `mlflow=URI` (None: not given)."""

    mlflow: bool = False
    mlflow_uri: str | None = None
    tensorboard: bool = False

    @property
    def any(self) -> bool:
        return self.mlflow or self.tensorboard


def parse_tracking(text: str) -> list[str]:
    """One `--tracking` value -> its items, e.g. 'mlflow=http://h:5000,tensorboard' -> ['mlflow=http://h:5000',
    'tensorboard']. A comma inside a URI stays with it: only a comma before a known name splits."""
    items: list[str] = []
    for part in text.split(","):
        name = part.strip().partition("=")[0].strip().lower()
        if name in NAMES or not items:
            items.append(part.strip())
        else:
            items[-1] += "," + part
    for item in items:
        name, eq, uri = item.partition("=")
        if name.strip().lower() not in NAMES:
            raise argparse.ArgumentTypeError(f"{item!r} is not a tracker; use mlflow, mlflow=URI or tensorboard "
                                             "(comma-separated or repeated)")
        if name.strip().lower() == TENSORBOARD and eq:
            raise argparse.ArgumentTypeError(f"{item!r}: tensorboard takes no URI; its events go to OUT/train")
        if eq and not uri.strip():
            raise argparse.ArgumentTypeError(f"{item!r} has an empty URI; write mlflow alone for the default store")
    return items


def from_items(given: Iterable[Iterable[str]] | None) -> Tracking:
    """The `--tracking` values (each a parse_tracking list) as one Tracking; two different URIs are refused."""
    items = [item for group in (given or []) for item in group]
    names = [item.partition("=")[0].strip().lower() for item in items]
    uris = sorted({item.partition("=")[2].strip() for item in items if "=" in item})
    if len(uris) > 1:
        raise ArgumentError(f"--tracking names two MLflow stores: {', '.join(uris)}.",
                            fix=["Give one URI: --tracking mlflow=URI (a run is logged to one store)."])
    return Tracking(mlflow=MLFLOW in names, mlflow_uri=uris[0] if uris else None, tensorboard=TENSORBOARD in names)


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def refuse_missing(tracking: Tracking) -> None:
    """Exit 2 before any phase when a tracker is asked for and its package is not installed (the phases run
    under this interpreter unless $NVSEG_PHASE_PYTHON says otherwise)."""
    for asked, module, extra in ((tracking.mlflow, "mlflow", "mlflow"), (tracking.tensorboard, "tensorboard",
                                                                           "tensorboard")):
        if asked and not installed(module):
            raise ArgumentError(f"--tracking {module} logs the finetune to {module}, and the {module} package is "
                                "not installed in this environment; nothing was run.",
                                fix=[f"Install the extra: pip install 'nvseg-bench[{extra}]' (or pip install "
                                     f"{module}), or drop --tracking {module}."])


def checked(given: Iterable[Iterable[str]] | None) -> Tracking:
    """The request's --tracking values as one Tracking, refused when a tracker's package is missing."""
    tracking = from_items(given)
    refuse_missing(tracking)
    return tracking


def store_uri(tracking: Tracking, out_dir: Path) -> str:
    """Where the MLflow run goes: the URI given, else $MLFLOW_TRACKING_URI, else OUT/../mlruns/mlflow.db."""
    if tracking.mlflow_uri:
        return local_uri(tracking.mlflow_uri)
    if os.environ.get(URI_ENV, "").strip():
        return local_uri(os.environ[URI_ENV].strip())
    return f"sqlite:///{out_dir.resolve().parent / STORE_DIR / STORE_DB}"


def artifact_root(uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: beside an SQLite store's database (MLflow's own default is
    relative to the working directory); None where the store decides (a server, a file store)."""
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri.removeprefix("sqlite:///")).parent / ARTIFACTS).as_uri()


def local_uri(uri: str) -> str:
    """A plain folder path (no scheme) as an absolute file URI: MLflow would read it relative to the phase's
    working directory (OUT), not the caller's."""
    if "://" in uri or uri.startswith(("file:", "databricks")) or uri.split(":", 1)[0] in ("sqlite", "postgresql",
                                                                                          "mysql", "mssql"):
        return uri
    return Path(uri).expanduser().resolve().as_uri()


def experiment_name() -> str:
    return os.environ.get(EXPERIMENT_ENV, "").strip() or EXPERIMENT
