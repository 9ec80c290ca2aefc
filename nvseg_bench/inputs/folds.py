"""Cross-validation folds (`--folds`): which folds a CV run validates on, and each fold's own datalist.

The folds are the datalist's `fold` values (any integers, at least two distinct), or those of the
seeded five-fold split dataset.py writes. Refuses, before any phase, a requested fold that holds no
case and an image listed in two folds (it would be trained on by the fold that validates it) or
twice in one (it would count twice in the pooled figures). A fold's datalist relabels that fold 0
(the bundle validates on fold 0) and every other case 1; the original fold values stay in OUT/cv.json.
Pure functions over datalist entries; writes only under OUT. No torch, no monai.
"""
from __future__ import annotations

import json
from pathlib import Path

from nvseg_bench.errors import DataContractError
from nvseg_bench.inputs import dataset
from nvseg_bench.inputs.request import ALL_FOLDS as ALL

_NOT_USABLE = "the datalist cannot be split for cross-validation (nothing was run)"


def source_entries(dataset_dir: Path, datalist: Path | None, out_dir: Path) -> tuple[list[dict], Path, str]:
    """The entries to split, their datalist file and where it came from, found as a single run finds them;
    any fold values are welcome here (chosen_folds judges them)."""
    return dataset.prepare_datalist(dataset_dir, datalist, out_dir, load=dataset.read_entries)


def _refuse_shared_images(entries: list[dict], path: Path, dataset_dir: Path) -> None:
    """An image (by the file it resolves to) listed in two folds, or twice in one."""
    listed: dict[Path, list[tuple[int, str]]] = {}
    for entry in entries:
        listed.setdefault((dataset_dir / entry["image"]).resolve(), []).append((entry["fold"], entry["image"]))
    shared = [f"{dataset.case_name(rows[0][1])}: " + ", ".join(f"fold {f} as {name!r}" for f, name in rows)
              for rows in listed.values() if len(rows) > 1]
    if shared:
        raise DataContractError(
            _NOT_USABLE,
            [f"{len(shared)} image(s) are listed more than once in {path}; in cross-validation each case is "
             "validated by one fold and trained on by the others, so it must be listed once:", *dataset.shown(shared)],
            ["List each image once, in one fold."])


def chosen_folds(entries: list[dict], path: Path, dataset_dir: Path, wanted: str) -> list[int]:
    """The folds to validate on, in the order asked (`all`: sorted), each holding at least one case."""
    _refuse_shared_images(entries, path, dataset_dir)
    present = sorted({e["fold"] for e in entries})
    if len(present) < 2:
        raise DataContractError(
            _NOT_USABLE, [f"every entry of {path} has fold {present[0]}: there is nothing to train on for that fold"],
            ["Give the cases at least two fold values (e.g. 0..4), or leave out --datalist for the seed-0 "
             "five-fold split."])
    folds = present if wanted == ALL else [int(f) for f in wanted.split(",")]
    empty = [f for f in folds if f not in present]
    if empty:
        raise DataContractError(
            _NOT_USABLE, [f"--folds {wanted} asks for fold(s) {empty}, and no case of {path} has that fold "
                          f"(folds present: {present})"],
            [f"Pass --folds with folds from {present}, or --folds all."])
    return folds


def fold_datalist(entries: list[dict], fold: int) -> dict:
    """The bundle's datalist for one fold: its cases fold 0 (validated), every other case fold 1 (trained)."""
    return {"training": [dict(e, fold=0 if e["fold"] == fold else 1) for e in entries]}


def validation_datalist(entries: list[dict], folds: list[int]) -> dict:
    """Every case of the chosen folds as fold 0: the one evaluation of the pretrained checkpoint scores them all."""
    return {"training": [dict(e, fold=0) for e in entries if e["fold"] in folds]}


def write_json(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path
