"""The datalist's `testing` list (upstream's datalist format, e.g. NV-Segment-CT's msd_task09_spleen_folds.json):
cases held out of training and of the epoch choice, which the bundle's own evaluation scores after the finetune.

Upstream lists its testing images without labels; only entries with a label can be scored, the others are
counted and left out. A case listed in `testing` and among the training or validation entries is refused
before any phase (exit 2, naming it): its score would not be a held-out score. The bundle's evaluate.json
reads the validation cases of its datalist (`datafold_read(...)[1]`: the `training` entries of fold `fold`),
so the test phases get a staged datalist in OUT/configs/ holding the testing cases as fold 0; the user's
datalist and the bundle stay as they are. No torch, no monai.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nvseg_bench.errors import DataContractError
from nvseg_bench.inputs.dataset import BAD_DATALIST, GENERATED_SOURCE, case_name, escapes, read_json, shown

STAGED = "test_datalist.json"  # under OUT/configs/, read by the two test phases only


@dataclass(frozen=True)
class TestSplit:
    """The labelled testing cases ({"image", "label"}, paths relative to the dataset dir), the testing images
    listed without a label (not scored), and the datalist they came from."""

    entries: tuple[dict[str, str], ...]
    unlabelled: tuple[str, ...]
    datalist: Path

    def to_json(self) -> dict[str, Any]:
        # the datalist is input.datalist already; output.* paths stay inside the run folder (the verifier checks)
        return {"n_cases": len(self.entries),
                "cases": [Path(e["image"]).name for e in self.entries], "unlabelled_not_scored": list(self.unlabelled)}


def _problem(entry: Any) -> str:
    if not isinstance(entry, dict) or not isinstance(entry.get("image"), str) or not entry["image"]:
        return f"{json.dumps(entry)} has no image path (a non-empty string)"
    if "label" in entry and (not isinstance(entry["label"], str) or not entry["label"]):
        return f"label {entry['label']!r} is not a non-empty string"
    return next((f"{key} {entry[key]!r} is absolute or leaves the dataset dir"
                 for key in ("image", "label") if key in entry and escapes(entry[key])), "")


def read_testing(path: Path, source: str, dataset_dir: Path) -> TestSplit | None:
    """The datalist's testing list, checked; None when it has none (or the datalist was generated)."""
    if source == GENERATED_SOURCE:
        return None
    data = read_json(path)
    listed = data.get("testing") if isinstance(data, dict) else None
    if not listed:
        return None
    if not isinstance(listed, list):
        raise DataContractError(BAD_DATALIST, [f'{path}: "testing" is not a list'],
                                ['Write it as "testing": [{"image": "imagesTs/x.nii.gz", "label": "labelsTs/x.nii.gz"}].'])
    problems = [f"testing[{i}]: {_problem(e)}" for i, e in enumerate(listed) if _problem(e)]
    missing = [e[k] for e in listed if not _problem(e) for k in ("image", "label") if k in e
               and not (dataset_dir / e[k]).is_file()]
    problems += [f"{name} does not exist under {dataset_dir}" for name in missing]
    if problems:
        raise DataContractError(BAD_DATALIST, [f"{path} has unusable testing entries:", *shown(problems)],
                                ["Give each testing entry an image and a label relative to the dataset dir, or "
                                 "remove the entry."])
    labelled = tuple({"image": e["image"], "label": e["label"]} for e in listed if "label" in e)
    return TestSplit(labelled, tuple(e["image"] for e in listed if "label" not in e), path)


def refuse_leaks(split: TestSplit | None, entries: list[dict], dataset_dir: Path) -> None:
    """A testing image or label that is also a training or validation file: refused, naming each case."""
    if split is None:
        return
    used = {(dataset_dir / e[k]).resolve(): e for e in entries for k in ("image", "label")}
    leaks = []
    for test in split.entries:
        for key in ("image", "label"):
            other = used.get((dataset_dir / test[key]).resolve())
            if other is not None:
                role = "validation (fold 0)" if other.get("fold") == 0 else f"training (fold {other.get('fold')})"
                leaks.append(f"{case_name(test['image'])}: testing {key} {test[key]!r} is also a {role} file")
                break
    if leaks:
        raise DataContractError(BAD_DATALIST, [f"{len(leaks)} testing case(s) in {split.datalist} are also used "
                                               "for training or validation, so the test score would not be held out:",
                                               *shown(leaks)],
                                ["List each case once: in `testing`, or among the training entries, not both."])


def stage(split: TestSplit, config_dir: Path) -> Path:
    """OUT/configs/test_datalist.json: the testing cases as fold 0 (evaluate.json scores fold `fold`)."""
    config_dir.mkdir(parents=True, exist_ok=True)
    path = config_dir / STAGED
    rows = [{"image": e["image"], "label": e["label"], "fold": 0} for e in split.entries]
    path.write_text(json.dumps({"training": rows}, indent=2) + "\n", encoding="utf-8")
    return path
