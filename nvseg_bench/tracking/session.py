"""One finetune's tracking from before its phases to after its output.json, and the parent run of a sweep
or a cross-validation.

`start` opens the MLflow run the bundle's handlers log into (a store that cannot be reached: the finetune
runs untracked and the reason is kept); `block` is what output.json records under `tracking`; `finish`
completes the MLflow run from the written evidence and returns the warnings to print at the end. Loads
mlflow_run.py (and so mlflow) only when MLflow was asked for.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nvseg_bench.phase_names import FINETUNE
from nvseg_bench.prepared import Prepared
from nvseg_bench.tracking import bundle
from nvseg_bench.tracking.choice import Tracking, checked, experiment_name, from_items, store_uri



@dataclass
class Tracker:
    """What was tracked for one run dir (a finetune, or a sweep's or CV's parent)."""

    tracking: Tracking
    out_dir: Path
    uri: str | None = None
    run: Any = None  # mlflow_run.MlflowRun once opened
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    def block(self) -> dict[str, Any] | None:
        """output.json's `tracking`: {mlflow: {uri, experiment_id, run_id, run_name} or {uri, error},
        tensorboard: {dir}}; None when nothing was asked for."""
        if not self.tracking.any:
            return None
        found: dict[str, Any] = {}
        if self.tracking.mlflow:
            found["mlflow"] = self.run.to_json() if self.run else {"uri": self.uri, "error": self.error}
        if self.tracking.tensorboard:
            found["tensorboard"] = {"dir": str(bundle.tensorboard_dir(self.out_dir))}
        return found


def untracked() -> Tracker:
    return Tracker(Tracking(), Path("."))


def _staged(p: Prepared) -> dict[str, Any]:
    return json.loads(p.staged.tracking.read_text()) if p.staged.tracking else {}


def start(p: Prepared, parent: Tracker | None = None) -> tuple[Prepared, Tracker]:
    """Open the finetune's MLflow run under the name the staged override gives the handlers (a child of
    `parent`, which opens now if it has not: after the first member passed its input checks); when that
    fails, take `--tracking` out of the finetune command so the phase runs untracked."""
    tracking = from_items(p.request.tracking)
    staged = _staged(p)
    tracker = Tracker(tracking, p.out_dir, uri=staged.get("tracking_uri"))
    if not tracking.mlflow or p.request.dry_run:
        return p, tracker
    from nvseg_bench.tracking.mlflow_run import TrackingFailed, open_run

    try:
        tracker.run = open_run(staged["tracking_uri"], staged["experiment_name"], staged["run_name"],
                               _opened(parent).run if parent else None)
    except TrackingFailed as exc:
        tracker.error = str(exc)
        tracker.warnings.append(f"{exc}; the finetune ran without MLflow tracking, its evidence is in {p.out_dir}")
        commands = dict(p.commands)
        commands[FINETUNE] = bundle.without_bundle_tracking(commands[FINETUNE])
        p = replace(p, commands=commands)
    return p, tracker


def parent(tracking_items: list[list[str]] | None, out_dir: Path) -> Tracker:
    """The parent run of a sweep or CV in OUT, its members child runs; checked now, opened with the first
    member (so a command refused for bad input leaves no run behind)."""
    tracking = checked(tracking_items)
    return Tracker(Tracking(mlflow=tracking.mlflow, mlflow_uri=tracking.mlflow_uri), out_dir,
                   uri=store_uri(tracking, out_dir) if tracking.mlflow else None)


def _opened(tracker: Tracker) -> Tracker:
    if tracker.tracking.mlflow and tracker.run is None and tracker.error is None:
        from nvseg_bench.tracking.mlflow_run import TrackingFailed, open_run

        try:
            tracker.run = open_run(tracker.uri, experiment_name(), bundle.run_name(tracker.out_dir))
        except TrackingFailed as exc:
            tracker.error = str(exc)
            tracker.warnings.append(f"{exc}; the runs go on without MLflow tracking")
    return tracker


def member_items(given: list[list[str]] | None, parent: Tracker) -> list[list[str]] | None:
    """A member run's --tracking values: the parent's store spelled out, so every member logs beside it (a
    member's own default would be OUT/mlruns, not OUT/../mlruns), and tensorboard when it was asked for."""
    items = [f"mlflow={parent.uri}"] if parent.tracking.mlflow else []
    items += ["tensorboard"] if from_items(given).tensorboard else []
    return [items] if items else None


def plots(doc: dict[str, Any]) -> dict[str, bytes]:
    """Validation Dice per epoch with the formal points, as PNG (matplotlib's object API, when installed); the
    harness adds its report's figures to the run when it writes a report."""
    out = doc.get("output") or {}
    dice = out.get("val_dice_per_epoch") or []
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return {}
    if not dice:
        return {}
    epochs = out.get("val_dice_epochs") or list(range(len(dice)))
    figure = Figure(figsize=(6.4, 3.8))
    ax = figure.add_subplot()
    ax.plot(epochs, dice, "o-", color="#444444", label="validation Dice (training, resampled)")
    for key, x, color in (("formal_pretrained_val_dice", epochs[0], "#d95f02"),
                          ("formal_finetuned_val_dice", epochs[-1], "#1b9e77")):
        if isinstance(out.get(key), (int, float)):
            ax.plot([x], [out[key]], "s", color=color, label=key.replace("_val_dice", "").replace("_", " "))
    ax.set(xlabel="epoch", ylabel="Dice", title=doc.get("headline", "")[:80])
    ax.legend(fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return {"dice_per_epoch.png": buffer.getvalue()}


def finish(tracker: Tracker, doc: dict[str, Any], files: dict[str, Path],
           summary: dict[str, float] | None = None) -> list[str]:
    """Complete the MLflow run from the written evidence; the warnings to print (never raises)."""
    if tracker.run is None:
        return tracker.warnings
    from nvseg_bench.tracking.mlflow_run import TrackingFailed, complete

    try:
        complete(tracker.run, doc, files, plots(doc) if doc.get("output") else {}, summary)
    except TrackingFailed as exc:
        tracker.warnings.append(f"{exc}; the run itself is complete in {tracker.out_dir}")
    return tracker.warnings


def evidence_files(out_dir: Path, *names: str) -> dict[str, Path]:
    """The run's files an MLflow run keeps: output.json, the verifier's summary when present, and `names`."""
    found = {name: out_dir / name for name in ("output.json", "manifest.json", "trust_summary.json", *names)}
    return {name: path for name, path in found.items() if path.is_file()}
