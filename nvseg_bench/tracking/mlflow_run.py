"""The MLflow side: open the run a finetune logs into, and complete it from the run's evidence.

The only module that imports mlflow, inside its functions, so a run without `--tracking mlflow` never
loads it. One MLflow run per finetune: opened before the phases (so the bundle's handlers log the
per-epoch curves into it, bundle.py), then given the recipe as params, the headline figures and gain
statistics as metrics, per-case and per-class tables, the plots, output.json and the verifier's summary
as artifacts, and tags for the verdict, the bundle and the code. Every failure is a TrackingFailed with a
one-line reason: the caller turns it into a warning, never into a lost run.
"""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from nvseg_bench import __version__, paths
from nvseg_bench.tracking.choice import artifact_root

# a server that cannot be reached answers within seconds, not minutes (the user's own settings win)
RETRY_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                  "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
PARENT_TAG = "mlflow.parentRunId"
PLAN_PARAMS = ("preset", "device", "epochs", "learning_rate", "patch_size", "precision", "amp", "sw_overlap",
               "val_interval", "train_dataset_cache_rate", "num_workers", "nproc_per_node", "multi_gpu")
INPUT_PARAMS = ("dataset_dir", "datalist", "n_train_cases", "n_val_cases", "label_mappings")
OUTPUT_METRICS = ("formal_pretrained_val_dice", "formal_finetuned_val_dice", "formal_improvement_over_pretrained",
                  "training_start_val_dice", "training_best_val_dice", "train_loss_first", "train_loss_last")
GAIN_METRICS = ("mean_gain", "ci_low", "ci_high", "n_cases", "n_better", "n_worse", "n_unchanged", "wilcoxon_p")


class TrackingFailed(Exception):
    """The tracking store refused or could not be reached; the message says where and why."""


@dataclass(frozen=True)
class MlflowRun:
    uri: str
    experiment_id: str
    run_id: str
    run_name: str
    parent_run_id: str | None = None

    def to_json(self) -> dict[str, str]:
        found = {"uri": self.uri, "experiment_id": self.experiment_id, "run_id": self.run_id, "run_name": self.run_name}
        return found | ({"parent_run_id": self.parent_run_id} if self.parent_run_id else {})


def _client(uri: str) -> Any:
    """The client; the settings go into os.environ, so the finetune phase's handlers (started after) get them."""
    for key, value in RETRY_DEFAULTS.items():
        os.environ.setdefault(key, value)
    if uri.startswith("file:"):  # asked for by name: MLflow 3 refuses its file store unless told it is wanted
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _failed(what: str, uri: str, exc: BaseException) -> TrackingFailed:
    reason = " ".join(str(exc).split())[:300] or type(exc).__name__
    return TrackingFailed(f"{what} at {uri} failed ({type(exc).__name__}: {reason})")


def open_run(uri: str, experiment: str, run_name: str, parent: MlflowRun | None = None) -> MlflowRun:
    """Create the run (status RUNNING) under `experiment`, a child of `parent` when given."""
    try:
        client = _client(uri)
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(experiment,
                                                                                    artifact_root(uri))
        tags = {PARENT_TAG: parent.run_id} if parent else {}
        run = client.create_run(experiment_id, run_name=run_name, tags=tags | code_tags())
    except Exception as exc:  # any client or store error: the run goes on untracked
        raise _failed("opening an MLflow run", uri, exc) from exc
    return MlflowRun(uri, experiment_id, run.info.run_id, run_name, parent.run_id if parent else None)


def code_tags() -> dict[str, str]:
    """The code that ran: the checkout's git commit when the package sits in one, else the package version."""
    tags = {"nvseg.version": __version__}
    try:
        proc = subprocess.run(["git", "-C", str(paths.REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        commit = proc.stdout.strip() if proc.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        commit = ""
    if commit and (paths.REPO / ".git").exists():
        tags |= {"nvseg.git_commit": commit, "mlflow.source.git.commit": commit}
    return tags


def params(doc: dict[str, Any]) -> dict[str, str]:
    """The recipe: the plan's values and the inputs, as MLflow params (strings, within its length limit)."""
    plan, given = doc.get("plan") or {}, doc.get("input") or {}
    found = {f"recipe.{k}": plan[k] for k in PLAN_PARAMS if plan.get(k) is not None}
    found |= {f"input.{k}": given[k] for k in INPUT_PARAMS if given.get(k) is not None}
    found["command"] = (doc.get("invocation") or {}).get("command")
    return {k: (v if isinstance(v, str) else json.dumps(v))[:6000] for k, v in found.items() if v is not None}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def metrics(doc: dict[str, Any]) -> dict[str, float]:
    """The headline figures, the formal gain's statistics and each class's, as MLflow metrics."""
    out = doc.get("output") or {}
    found = {k: _number(out.get(k)) for k in OUTPUT_METRICS}
    stats = out.get("formal_gain_stats") or {}
    found |= {f"gain.{k}": _number(stats.get(k)) for k in GAIN_METRICS}
    for name, block in (out.get("formal_class_gain_stats") or {}).items():
        found |= {f"class.{name}.{k}": _number((block or {}).get(k)) for k in ("mean_gain", "ci_low", "ci_high")}
    for name, value in ((out.get("forgetting") or {}).get("classes") or {}).items():
        found[f"forgetting.{name}.agreement"] = _number(value)
    found["wall_seconds"] = _number((doc.get("runtime") or {}).get("wall_seconds"))
    return {k: v for k, v in found.items() if v is not None}


def tags(doc: dict[str, Any]) -> dict[str, str]:
    """The verdict and the bundle's provenance; the headline is the run's description in the MLflow UI."""
    out, bundle = doc.get("output") or {}, (doc.get("input") or {}).get("bundle") or {}
    found = {"nvseg.status": doc.get("status"), "nvseg.gain_confidence": out.get("gain_confidence"),
             "nvseg.recommended": "finetuned" if out.get("recommended_is_finetuned") else "pretrained",
             "nvseg.decision_reason": out.get("decision_reason"), "mlflow.note.content": doc.get("headline"),
             "nvseg.model": doc.get("model"), "nvseg.bundle.source": bundle.get("source"),
             "nvseg.bundle.repo": bundle.get("repo"), "nvseg.bundle.revision": bundle.get("revision"),
             "nvseg.bundle.path": bundle.get("path")}
    return {k: str(v)[:5000] for k, v in found.items() if v is not None}


def _csv(header: list[str], rows: Iterable[list[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def tables(doc: dict[str, Any]) -> dict[str, str]:
    """Per-case and per-class Dice before and after, as CSV text by artifact name (none for a sweep's parent)."""
    out = doc.get("output") or {}
    if not out:
        return {}
    before, after = out.get("formal_pretrained_per_case") or {}, out.get("formal_finetuned_per_case") or {}
    cases = sorted(set(before) | set(after))
    found = {"per_case.csv": _csv(["case", "pretrained", "finetuned", "gain"],
                                  ([c, before.get(c), after.get(c), _gain(before.get(c), after.get(c))] for c in cases))}
    pre, post = out.get("formal_pretrained_per_class") or {}, out.get("formal_finetuned_per_class") or {}
    stats = out.get("formal_class_gain_stats") or {}
    classes = sorted(set(pre) | set(post))
    if classes:
        found["per_class.csv"] = _csv(
            ["class", "pretrained", "finetuned", "gain", "ci_low", "ci_high"],
            ([c, pre.get(c), post.get(c), _gain(pre.get(c), post.get(c)), (stats.get(c) or {}).get("ci_low"),
              (stats.get(c) or {}).get("ci_high")] for c in classes))
    return found


def _gain(before: Any, after: Any) -> float | None:
    return after - before if _number(before) is not None and _number(after) is not None else None


def complete(run: MlflowRun, doc: dict[str, Any], files: dict[str, Path], plots: dict[str, bytes],
             summary: dict[str, float] | None = None) -> None:
    """Add the run's evidence to `run` and end it (FINISHED when the run passed, else FAILED).
    `files`: artifact path -> file, e.g. {"output.json": OUT/output.json}; `plots`: name -> PNG bytes;
    `summary`: more metrics (a sweep's spread of gains)."""
    try:
        client = _client(run.uri)
        known = set(client.get_run(run.run_id).data.params)  # a param is logged once: the handler's stay
        fresh = {k: v for k, v in params(doc).items() if k not in known}
        from mlflow.entities import Metric, Param, RunTag

        stamp = _now_ms()
        figures = metrics(doc) | (summary or {})
        client.log_batch(run.run_id, metrics=[Metric(k, v, stamp, 0) for k, v in figures.items()],
                         params=[Param(k, v) for k, v in fresh.items()],
                         tags=[RunTag(k, v) for k, v in tags(doc).items()])
        _log_files(client, run.run_id, files, tables(doc), plots)
        client.set_terminated(run.run_id, "FINISHED" if doc.get("status") == "passed" else "FAILED")
    except Exception as exc:
        raise _failed(f"logging to MLflow run {run.run_id}", run.uri, exc) from exc


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


def _log_files(client: Any, run_id: str, files: dict[str, Path], texts: dict[str, str],
               plots: dict[str, bytes]) -> None:
    for name, path in files.items():
        if path.is_file():
            client.log_artifact(run_id, str(path), artifact_path=str(Path(name).parent) if "/" in name else None)
    with tempfile.TemporaryDirectory(prefix="nvseg-mlflow-") as tmp:
        for folder, items in (("tables", {k: v.encode() for k, v in texts.items()}), ("plots", plots)):
            if not items:
                continue
            where = Path(tmp) / folder
            where.mkdir()
            for name, data in items.items():
                (where / name).write_bytes(data)
            client.log_artifacts(run_id, str(where), artifact_path=folder)


def add_to(block: dict[str, Any], files: dict[str, Path], extra_tags: dict[str, str],
           plots: dict[str, bytes] | None = None) -> None:
    """Add files, tags and plots to a run already logged (output.json's tracking.mlflow block): the verifier's
    summary once the harness has judged the pack, the harness report's figures once it is written."""
    run = MlflowRun(block["uri"], block["experiment_id"], block["run_id"], block.get("run_name", ""))
    try:
        client = _client(run.uri)
        for key, value in extra_tags.items():
            client.set_tag(run.run_id, key, value)
        _log_files(client, run.run_id, files, {}, plots or {})
    except Exception as exc:
        raise _failed(f"logging to MLflow run {run.run_id}", run.uri, exc) from exc
