"""Data contract: which cases a run uses, and whether each pair is usable.

Owns the imagesTr/labelsTr pairing, the datalist (given, found, or a generated seed-0 five-fold
split) and the per-pair shape/affine check (headers only). What the voxels look like is audit.py's.
Datalist entries stay in the bundle's form ({"image", "label", "fold"}, paths relative to the
dataset dir); `entry_paths` turns one into files. Reads NIfTI with nibabel; writes only
OUT/datalist.json, never into the dataset dir. No torch, no monai.
"""
from __future__ import annotations

import json
import math
import os
import random
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable

import nibabel
import numpy as np

from nvseg_bench import paths
from nvseg_bench.errors import ArgumentError, DataContractError

NIFTI_SUFFIXES = (".nii.gz", ".nii")
SHOWN = 10  # list at most this many offending files, then "and N more"
AFFINE_ATOL = 1e-3
MIN_SPACING_MM = 1e-3  # below a micrometre an axis has no real extent: a broken header, not a scan
N_FOLDS = 5
GENERATED_SOURCE = "generated: seed-0 five-fold"
DATASET_DATALIST = "datalist.json"  # a dataset's own split, used when --datalist is not given
# CT in Hounsfield units holds air (about -1000 HU) and dense tissue or bone (above 200 HU).

# WrapStructError: a file too short for a NIfTI header (a text file named .nii.gz, say)
NIFTI_ERRORS = (nibabel.filebasedimages.ImageFileError, nibabel.wrapstruct.WrapStructError, OSError, EOFError,
                ValueError, zlib.error)
UNUSABLE = "the dataset is not usable (nothing was run)"
BAD_DATALIST = "the datalist is not usable (nothing was run)"
_PAIR_RULE = "Each imagesTr/NAME.nii.gz needs labelsTr/NAME.nii.gz with the same shape and affine."
_DATALIST_FORM = '{"training": [{"image": "imagesTr/x.nii.gz", "label": "labelsTr/x.nii.gz", ' \
    '"fold": 0}, ...]}'


@dataclass(frozen=True)
class CasePair:
    """One image/label pair; paths are relative to the dataset dir, as a datalist writes them."""

    name: str
    image: Path
    label: Path


def validation_images(entries: list[dict], dataset_dir: Path) -> tuple[Path, ...]:
    """The images the bundle validates on: the datalist's fold 0."""
    return tuple(dataset_dir / e["image"] for e in entries if int(e.get("fold", -1)) == 0)


def case_name(path: str | Path) -> str:
    """'imagesTr/lung_001.nii.gz' -> 'lung_001'."""
    base = PurePosixPath(str(path)).name
    for suffix in NIFTI_SUFFIXES:
        if base.endswith(suffix):
            return base[: -len(suffix)]
    return base


def entry_paths(entry: dict, dataset_dir: Path) -> tuple[Path, Path]:
    """The image and label files of one datalist entry."""
    return dataset_dir / entry["image"], dataset_dir / entry["label"]


def shown(items: list[str]) -> list[str]:
    """The first SHOWN items, then 'and N more'."""
    return items[:SHOWN] + ([f"and {len(items) - SHOWN} more"] if len(items) > SHOWN else [])


def _listing(items: list[str]) -> str:
    """'a, b, c' with at most SHOWN names, then ' and N more'."""
    more = len(items) - SHOWN
    return ", ".join(items[:SHOWN]) + (f" and {more} more" if more > 0 else "")


def find_pairs(dataset_dir: Path) -> list[CasePair]:
    """Pair imagesTr/NAME with labelsTr/NAME, or follow an MSD dataset.json "training" list."""
    if not dataset_dir.is_dir():
        raise DataContractError(
            UNUSABLE, [f"dataset dir {dataset_dir} does not exist or is not a directory"],
            ["Pass the folder that holds imagesTr/ and labelsTr/."])
    from_json = _pairs_from_dataset_json(dataset_dir)
    if from_json is not None:
        return from_json
    images = _nifti_files(dataset_dir / "imagesTr")
    labels = _nifti_files(dataset_dir / "labelsTr")
    if not images:
        raise DataContractError(
            UNUSABLE, [f"{dataset_dir}/imagesTr/ holds no .nii.gz or .nii images"],
            [_PAIR_RULE, "Put the images under imagesTr/, or pass --datalist."])
    no_label = [images[n].name for n in sorted(images) if n not in labels]
    no_image = [labels[n].name for n in sorted(labels) if n not in images]
    evidence = []
    if no_label:
        evidence.append(f"labelsTr/ has no label for {len(no_label)} images: {_listing(no_label)}")
    if no_image:
        evidence.append(f"imagesTr/ has no image for {len(no_image)} labels: {_listing(no_image)}")
    if evidence:
        raise DataContractError(
            UNUSABLE, evidence,
            [_PAIR_RULE, "Fix the pairs, or pass --datalist with the cases to use."])
    return [CasePair(n, images[n].relative_to(dataset_dir), labels[n].relative_to(dataset_dir))
            for n in sorted(images)]


def _nifti_files(folder: Path) -> dict[str, Path]:
    """NAME -> file for the NIfTI files in a folder; skips hidden files such as macOS '._x'."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.name.startswith(".") or not path.name.endswith(NIFTI_SUFFIXES):
            continue
        name = case_name(path)
        if name in found:
            raise DataContractError(
                UNUSABLE, [f"{folder.name}/ holds both {found[name].name} and {path.name}"],
                ["Keep one file per case (either .nii.gz or .nii)."])
        found[name] = path
    return found


def _pairs_from_dataset_json(dataset_dir: Path) -> list[CasePair] | None:
    """Pairs from an MSD dataset.json "training" list; None when there is no such list."""
    path = dataset_dir / "dataset.json"
    data = read_json(path) if path.is_file() else None
    training = data.get("training") if isinstance(data, dict) else None
    if not isinstance(training, list) or not training:
        return None
    entries = [dict(e, fold=1) if isinstance(e, dict) else e for e in training]  # MSD has no folds
    _check_entries(entries, path, dataset_dir)
    return [CasePair(case_name(e["image"]), Path(os.path.normpath(e["image"])),
                     Path(os.path.normpath(e["label"]))) for e in entries]


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataContractError(BAD_DATALIST, [f"cannot read {path}: {exc}"],
                                ["Check the path and its permissions."]) from exc
    except json.JSONDecodeError as exc:
        raise DataContractError(
            BAD_DATALIST,
            [f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"],
            [f"Fix the JSON; the expected form is {_DATALIST_FORM}."]) from exc
    except UnicodeDecodeError as exc:
        raise DataContractError(BAD_DATALIST, [f"{path} is not UTF-8 text: {exc}"],
                                [f"Pass a JSON datalist of the form {_DATALIST_FORM}."]) from exc


def read_entries(path: Path, dataset_dir: Path) -> list[dict]:
    """A datalist's training entries, each well formed and naming files under the dataset dir; the folds
    are not judged here (a run needs fold 0, cross-validation any two values)."""
    data = read_json(path)
    training = data.get("training") if isinstance(data, dict) else None
    if not isinstance(training, list) or not training:
        raise DataContractError(BAD_DATALIST, [f'{path} has no non-empty "training" list'],
                                [f"Write the datalist as {_DATALIST_FORM}."])
    _check_entries(training, path, dataset_dir)
    return [{"image": e["image"], "label": e["label"], "fold": e["fold"]} for e in training]


def load_datalist(path: Path, dataset_dir: Path) -> list[dict]:
    """Read a datalist and check it against the dataset dir; returns its training entries."""
    entries = read_entries(path, dataset_dir)
    folds = sorted({e["fold"] for e in entries})
    if 0 not in folds:
        raise DataContractError(
            BAD_DATALIST,
            [f"No validation cases: no entry in {path} has fold 0 (folds seen: {folds})."],
            ['Mark the validation cases with "fold": 0, or leave out --datalist to use a '
             "generated seed-0 five-fold split."])
    if folds == [0]:
        raise DataContractError(
            BAD_DATALIST, [f"No training cases: every entry in {path} has fold 0."],
            ["Give the training cases a fold other than 0 (fold 0 is validation)."])
    _refuse_validation_leaks(entries, path, dataset_dir)
    _refuse_repeated_validation(entries, path, dataset_dir)
    return entries


def _refuse_repeated_validation(entries: list[dict], path: Path, dataset_dir: Path) -> None:
    """Refuse a validation image listed more than once: it would count twice in every mean Dice.

    A training image listed twice is left alone: repeating a case is a way to oversample it."""
    spellings: dict[Path, list[str]] = {}
    for entry in entries:
        if entry["fold"] == 0:
            spellings.setdefault((dataset_dir / entry["image"]).resolve(), []).append(entry["image"])
    repeated = [f"{case_name(names[0])}: {len(names)} times, as " + ", ".join(repr(n) for n in names)
                for names in spellings.values() if len(names) > 1]
    if repeated:
        raise DataContractError(
            BAD_DATALIST,
            [f"{len(repeated)} validation image(s) are listed more than once in fold 0 of {path}, so they "
             "would count more than once in every mean Dice:", *shown(repeated)],
            ["List each validation case once (two datalists joined together repeat every case)."])


def _refuse_validation_leaks(entries: list[dict], path: Path, dataset_dir: Path) -> None:
    """Refuse an image listed in fold 0 and in a training fold: validation would score training data.

    Entries are compared by the image file they resolve to, so 'imagesTr/a.nii.gz' and
    'imagesTr/../imagesTr/a.nii.gz' (or a link to it) are the same case, in whatever order listed.
    """
    folds_of: dict[Path, dict[int, str]] = {}
    for entry in entries:
        seen = folds_of.setdefault((dataset_dir / entry["image"]).resolve(), {})
        seen.setdefault(entry["fold"], entry["image"])
    leaks = []
    for folds in folds_of.values():
        trained = sorted(f for f in folds if f != 0)
        if 0 in folds and trained:
            as_trained = ", ".join(f"fold {f} as {folds[f]!r}" for f in trained)
            leaks.append(f"{case_name(folds[0])}: fold 0 as {folds[0]!r} and {as_trained}")
    if leaks:
        raise DataContractError(
            BAD_DATALIST,
            [f"{len(leaks)} validation image(s) in {path} are also training images, so validation Dice "
             "would be measured on training data:", *shown(leaks)],
            ["List each image in one fold only: fold 0 to validate, any other fold to train."])


def _check_entries(entries: list[Any], path: Path, dataset_dir: Path) -> None:
    """Refuse malformed entries, then paths that leave the dataset dir, then missing files."""
    malformed = [f"training[{i}]: {_entry_problem(e)}"
                 for i, e in enumerate(entries) if _entry_problem(e)]
    if malformed:
        raise DataContractError(
            BAD_DATALIST, [f"{path} has malformed entries:", *shown(malformed)],
            ['Each entry needs "image" and "label" (paths as strings) and an integer "fold".'])
    escaping = [f"training[{i}] {key}: {e[key]!r}" for i, e in enumerate(entries)
                for key in ("image", "label") if escapes(e[key])]
    if escaping:
        raise DataContractError(
            BAD_DATALIST,
            [f"{path} has paths that are absolute or leave the dataset dir {dataset_dir}:",
             *shown(escaping)],
            ['Write paths relative to the dataset dir (e.g. "imagesTr/case_001.nii.gz"); '
             "copy or link outside files into it."])
    missing = [e[key] for e in entries for key in ("image", "label")
               if not (dataset_dir / e[key]).is_file()]
    if missing:
        raise DataContractError(
            BAD_DATALIST,
            [f"{len(missing)} files named in {path} do not exist under {dataset_dir}: "
             + _listing(missing)],
            ["Fix the paths (relative to the dataset dir), or remove those entries."])


def _entry_problem(entry: Any) -> str:
    if not isinstance(entry, dict):
        return f"{json.dumps(entry)} is not an object"
    absent = [key for key in ("image", "label", "fold") if key not in entry]
    if absent:
        return f"missing {', '.join(absent)}"
    if not all(isinstance(entry[key], str) and entry[key] for key in ("image", "label")):
        return "image and label must be non-empty strings"
    if not isinstance(entry["fold"], int) or isinstance(entry["fold"], bool):
        return f"fold {entry['fold']!r} is not an integer"
    return ""


def escapes(rel: str) -> bool:
    """True for an absolute path or one whose '..' leads out of the dataset dir."""
    return os.path.isabs(rel) or os.path.normpath(rel).split(os.sep)[0] == ".."


def five_fold_datalist(pairs: list[CasePair], seed: int = 0) -> dict:
    """Shuffle the sorted names with Random(seed); fold = position % 5; fold 0 is validation."""
    if len(pairs) < 2:
        raise DataContractError(
            UNUSABLE,
            [f"found {len(pairs)} image/label pair; a finetune needs one to train, one to check"],
            ["Add cases, or pass --datalist with at least one fold-0 and one other entry."])
    by_name = {p.name: p for p in pairs}
    order = sorted(by_name)
    random.Random(seed).shuffle(order)
    fold = {name: i % N_FOLDS for i, name in enumerate(order)}  # position 0 -> 0, 1 -> 1
    return {"training": [
        {"image": by_name[n].image.as_posix(), "label": by_name[n].label.as_posix(), "fold": fold[n]}
        for n in sorted(fold)
    ]}


def _load(path: Path) -> Any:
    try:
        return nibabel.load(str(path))
    except NIFTI_ERRORS as exc:
        raise unreadable(path, exc) from exc


def voxels(image: Any, path: Path) -> np.ndarray:
    try:
        return np.asanyarray(image.dataobj)
    except NIFTI_ERRORS as exc:
        raise unreadable(path, exc) from exc


def unreadable(path: Path, exc: BaseException) -> DataContractError:
    return DataContractError(
        UNUSABLE, [f"{path} is not a readable NIfTI file: {exc}"],
        ["Re-export it as NIfTI (.nii.gz), or remove the case from the datalist."])


def voxel_spacing(image: Any) -> list[float]:
    """Spacing in mm along each voxel axis, as MONAI derives it: the lengths of the affine's columns."""
    return [float(v) for v in np.linalg.norm(np.asarray(image.affine, float)[:3, :3], axis=0)]


def spacing_problem(image: Any, rel: str) -> str:
    """Why a file's voxel spacing cannot be resampled, or '' when it can.

    The affine decides, as it does for MONAI; nibabel already reads a zero pixdim as 1 mm."""
    spacing = voxel_spacing(image)
    if all(math.isfinite(v) and v > MIN_SPACING_MM for v in spacing):
        return ""
    return (f"{rel} has voxel spacing {_rounded(spacing)} mm (the lengths of its affine's columns): "
            "an axis with zero or no spacing cannot be resampled")


def _rounded(values: list[float]) -> list[float]:
    return [round(v, 4) for v in values]


def check_pairs_geometry(entries: list[dict], dataset_dir: Path) -> None:
    """Refuse a file without a usable voxel spacing, then a label that differs from its image in shape
    or affine; reads headers only."""
    spacing: list[str] = []
    problems: list[str] = []
    for entry in entries:
        image_path, label_path = entry_paths(entry, dataset_dir)
        image, label = _load(image_path), _load(label_path)
        spacing += [p for p in (spacing_problem(image, entry["image"]), spacing_problem(label, entry["label"])) if p]
        if tuple(image.shape) != tuple(label.shape):
            problems.append(f"{entry['label']} has shape {tuple(label.shape)}, "
                            f"{entry['image']} has {tuple(image.shape)}")
        elif not np.allclose(image.affine, label.affine, atol=AFFINE_ATOL):
            problems.append(f"{entry['label']} has affine {_affine_text(label.affine)}, "
                            f"{entry['image']} has {_affine_text(image.affine)}")
    if spacing:  # first: a pair with the same zero column "matches", and resampling then fails
        raise DataContractError(
            UNUSABLE, [f"{len(spacing)} file(s) have no usable voxel spacing:", *shown(spacing)],
            ["Re-export those images and labels with their real spacing (the scan's pixel spacing and "
             "slice spacing), or remove those cases from the datalist."])
    if problems:
        raise DataContractError(
            UNUSABLE, [f"{len(problems)} label(s) do not match their image:", *shown(problems)],
            [_PAIR_RULE, "Resample or re-export those labels onto their image grid."])


def _affine_text(affine: np.ndarray) -> str:
    return json.dumps(np.round(np.asarray(affine, float)[:3], 3).tolist())


def prepare_datalist(
    dataset_dir: Path, datalist: Path | None, out_dir: Path,
    load: Callable[[Path, Path], list[dict]] | None = None,
) -> tuple[list[dict], Path, str]:
    """The run's entries, the datalist file to hand the bundle, and where that file came from.

    A given datalist is checked and used as-is ("given: PATH"); else the dataset's own
    DATASET/datalist.json ("found: PATH"); else a seed-0 five-fold datalist is written to
    OUT/datalist.json ("generated: seed-0 five-fold"). `load` reads a datalist (default load_datalist,
    which wants a fold 0; cross-validation passes read_entries).
    """
    load = load or load_datalist
    if paths.is_inside(out_dir, dataset_dir):
        raise ArgumentError(
            f"--output-dir {out_dir} is inside the dataset dir {dataset_dir}",
            ["A run writes its datalist, configs and checkpoints there; a dataset stays as it is."],
            ["Pass an --output-dir outside the dataset dir."])
    if datalist is not None:
        return load(datalist, dataset_dir), datalist.resolve(), f"given: {datalist}"
    own = dataset_dir / DATASET_DATALIST
    if own.is_file():
        return load(own, dataset_dir), own.resolve(), f"found: {own}"
    generated = five_fold_datalist(find_pairs(dataset_dir), seed=0)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "datalist.json"
    target.write_text(json.dumps(generated, indent=2) + "\n", encoding="utf-8")
    return generated["training"], target.resolve(), GENERATED_SOURCE
