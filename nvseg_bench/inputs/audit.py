"""Dataset audit: what the cases look like, recorded in output.json `input.dataset_audit`.

Per case: shape, spacing, origin, orientation code, HU range and percentiles, label values,
foreground volume in mL, connected components of each mapped value. Summary: drift, ranges,
whether the intensities look like CT, which mapped values training lacks. Each file is read once:
its sha256 (for the manifest, the preprocessing cache and the harness) is taken from the same bytes
the voxels are decoded from. With a memo dir, a case whose two files are known by digest (from the
caller's (path, size, mtime) memo) is not read at all: its row comes from the memo. Cases are
audited on a thread pool (gzip inflation and numpy release the GIL), and
percentiles and components work on a subsample and a bounding box, so hundreds of large volumes
audit in about a minute. No torch, no monai.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import sys
import time
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nibabel
import numpy as np
from nibabel.spatialimages import HeaderDataError

from nvseg_bench.inputs import anatomy
from nvseg_bench.inputs.dataset import NIFTI_ERRORS, UNUSABLE, shown, unreadable, voxels, case_name, entry_paths
from nvseg_bench.errors import DataContractError
from nvseg_bench.store.files import write_atomic

try:
    from isal import isal_zlib as _FAST_ZLIB
except ImportError:  # a platform without its wheel: zlib, about three times slower
    _FAST_ZLIB = zlib

CT_AIR_MAX_HU = -500.0
CT_DENSE_MIN_HU = 200.0
PERCENTILE_SAMPLES = 1_000_000  # percentiles of a strided sample this size: exact enough, far cheaper
PROGRESS_EVERY_S = 5.0
COUNT_CHUNK = 1 << 18  # label voxels counted at a time: 2 MiB as int64, about 0.65x one whole-volume bincount
SHOWN_CASES = 5  # validation cases named in a message, then "..."


NIFTI2_SIZEOF_HDR = 540  # a NIfTI-2 header's first field; NIfTI-1 has 348
MEMO_VERSION = 1  # bump when a row's content changes: older memo entries are then never read
ENTRY_FIELDS = ("name", "image", "label", "fold")  # a row's fields that come from the datalist, not the files
# A label map holds class values: VISTA3D's ids stop at 132 (124 classes) and the largest public CT label sets
# (TotalSegmentator's 117) stay far below this; a CT image holds thousands of distinct intensities.
MAX_LABEL_VALUES = 256


def audit_dataset(entries: list[dict], dataset_dir: Path, local_values: list[int], workers: int | None = None,
                  digests: dict[str, str] | None = None, memo_dir: Path | None = None) -> dict:
    """Per-case rows and a summary for `input.dataset_audit`; reads each file once, or not at all.

    `digests` (absolute path -> sha256) is read and completed in place: the digests of every file read
    are added. `memo_dir` keeps each case's row under the digests of its two files."""
    workers = workers or min(8, os.cpu_count() or 1)
    digests = {} if digests is None else digests
    started, last = time.monotonic(), time.monotonic()
    rows: list[dict] = []
    hits = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for row, hit in pool.map(lambda e: _audit_or_recall(e, dataset_dir, local_values, digests, memo_dir), entries):
            rows.append(row)
            hits += hit
            if time.monotonic() - last > PROGRESS_EVERY_S:
                last = time.monotonic()
                print(f"[audit] {len(rows)}/{len(entries)} cases, {last - started:.0f} s", file=sys.stderr, flush=True)
    return {"n_pairs": len(rows), "samples": rows, "summary": _summarise(rows, local_values),
            "seconds": round(time.monotonic() - started, 3),
            "files_read": 2 * (len(rows) - hits), "memo_hits": hits}


def _memo_path(memo_dir: Path, image_sha: str, label_sha: str, local_values: list[int]) -> Path:
    key = hashlib.sha256(f"{MEMO_VERSION}|{image_sha}|{label_sha}|{sorted(local_values)}".encode()).hexdigest()
    return memo_dir / f"{key[:32]}.json"


def _recall(memo: Path) -> dict | None:
    try:
        row = json.loads(memo.read_text())
    except (OSError, ValueError):
        return None  # missing, or damaged: audit the case again
    return row if isinstance(row, dict) and "hu_min" in row else None


def _remember(memo: Path, row: dict) -> None:
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        # atomic: a concurrent run sees the whole row or none
        write_atomic(memo, json.dumps({k: v for k, v in row.items() if k not in ENTRY_FIELDS}))
    except OSError:
        pass  # an unwritable memo costs the next run a read, nothing more


def _audit_or_recall(entry: dict, dataset_dir: Path, local_values: list[int], digests: dict[str, str],
                     memo_dir: Path | None) -> tuple[dict, bool]:
    image_path, label_path = entry_paths(entry, dataset_dir)
    known = digests.get(str(image_path)), digests.get(str(label_path))
    head = {"name": case_name(entry["image"]), "image": entry["image"], "label": entry["label"], "fold": entry["fold"]}
    if memo_dir is not None and known[0] and known[1]:
        row = _recall(_memo_path(memo_dir, known[0], known[1], local_values))
        if row is not None:
            return head | row, True
    row = head | _audit_case(image_path, label_path, local_values, digests)
    if memo_dir is not None:
        _remember(_memo_path(memo_dir, digests[str(image_path)], digests[str(label_path)], local_values), row)
    return row, False


def _flat(array: np.ndarray) -> np.ndarray:
    return array.ravel(order="K")  # a view for C- and F-ordered arrays alike (NIfTI loads F-ordered)


def gunzip(raw: bytes) -> bytes:
    """A gzip file's content. Inflating is most of an audit's time: ISA-L (the `isal` package) does it in
    about a third of zlib's time, with zlib's errors; a file of several gzip members takes the slow path."""
    inflater = _FAST_ZLIB.decompressobj(31)  # 31: a gzip header and trailer, whose CRC inflating checks
    try:
        data = inflater.decompress(raw)
    except _FAST_ZLIB.error:
        data = b""  # a damaged file: zlib's path raises the error the caller reports
    return data if inflater.eof and not inflater.unused_data else gzip.decompress(raw)


def load_hashed(path: Path) -> tuple[nibabel.Nifti1Image, str]:
    """The image and the sha256 of its file, from one read: the bytes are hashed, then decoded in memory."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise unreadable(path, exc) from exc
    digest = hashlib.sha256(raw).hexdigest()
    try:
        data = gunzip(raw) if raw[:2] == b"\x1f\x8b" else raw
        del raw
        nifti2 = data[:4] in (NIFTI2_SIZEOF_HDR.to_bytes(4, "little"), NIFTI2_SIZEOF_HDR.to_bytes(4, "big"))
        return (nibabel.Nifti2Image if nifti2 else nibabel.Nifti1Image).from_bytes(data), digest
    except (*NIFTI_ERRORS, HeaderDataError) as exc:
        raise unreadable(path, exc) from exc


def _audit_case(image_path: Path, label_path: Path, local_values: list[int], digests: dict[str, str]) -> dict:
    image, digests[str(image_path)] = load_hashed(image_path)
    label_image, digests[str(label_path)] = load_hashed(label_path)
    hu = voxels(image, image_path)
    labels = voxels(label_image, label_path)
    counts = _label_counts(labels, label_path)
    spacing = [float(z) for z in image.header.get_zooms()[:3]]
    voxel_ml = float(np.prod(spacing)) / 1000.0  # mm^3 -> mL
    flat = _flat(hu)
    nonfinite = nonfinite_count(flat)
    sample = flat[:: max(1, flat.size // PERCENTILE_SAMPLES)]
    p01, p99 = np.percentile(sample, [1, 99])
    return {
        "shape": [int(s) for s in image.shape],
        "spacing": [round(s, 6) for s in spacing],
        "origin": [round(float(v), 4) for v in image.affine[:3, 3]],
        "orientation": "".join(c or "?" for c in nibabel.aff2axcodes(image.affine)),
        "hu_min": float(flat.min()),
        "hu_max": float(flat.max()),
        "hu_p01": float(p01),
        "hu_p99": float(p99),
        "nonfinite_voxels": nonfinite,
        "label_values": sorted(counts),
        "foreground_ml": {str(v): round(n * voxel_ml, 6) for v, n in sorted(counts.items()) if v},
        "components": {str(v): components(labels, v) for v in local_values if v in counts},
    }


def _label_counts(labels: np.ndarray, path: Path) -> dict[int, int]:
    """Voxel count per label value; refuses non-integer label values."""
    flat = _flat(labels)
    if labels.dtype.kind in "iub" and flat.min() >= 0 and flat.max() < 65536:
        counts = np.zeros(int(flat.max()) + 1, dtype=np.int64)
        for start in range(0, flat.size, COUNT_CHUNK):  # bincount casts to int64: a chunk's copy stays small
            counts += np.bincount(flat[start:start + COUNT_CHUNK], minlength=counts.size)
        return {int(v): int(n) for v, n in enumerate(counts) if n}
    values, counts = np.unique(flat, return_counts=True)
    fractional = [float(v) for v in values if v % 1]
    if fractional:
        raise DataContractError(
            UNUSABLE, [f"{path} holds non-integer label values: {fractional[:5]}"],
            ["Save labels as integer class values (0 = background)."])
    return {int(v): int(n) for v, n in zip(values, counts)}


def components(labels: np.ndarray, value: int) -> int:
    """Face-connected components of one label value, labelled inside its bounding box only."""
    from scipy import ndimage  # import cost only when auditing

    mask = labels == value
    box = tuple(slice(int(np.argmax(a)), len(a) - int(np.argmax(a[::-1])))
                for a in (mask.any(axis=tuple(j for j in range(mask.ndim) if j != i)) for i in range(mask.ndim)))
    return int(ndimage.label(mask[box])[1])


def _summarise(rows: list[dict], local_values: list[int]) -> dict:
    hu_min = min((r["hu_min"] for r in rows), default=0.0)
    hu_max = max((r["hu_max"] for r in rows), default=0.0)
    looks_like_ct, reason = _ct_verdict(hu_min, hu_max)
    shapes = sorted({tuple(r["shape"]) for r in rows})
    train_seen = {v for r in rows if r["fold"] != 0 for v in r["label_values"]}
    val_seen = {v for r in rows if r["fold"] == 0 for v in r["label_values"]}
    return {
        "n_train": sum(r["fold"] != 0 for r in rows),
        "n_val": sum(r["fold"] == 0 for r in rows),
        "distinct_shapes": [list(s) for s in shapes],
        "shape_drift": len(shapes) > 1,
        "spacing_range": _axis_range([r["spacing"] for r in rows]),
        "origin_range": _axis_range([r["origin"] for r in rows]),
        "orientation_codes": dict(Counter(r["orientation"] for r in rows)),
        "hu_range": [hu_min, hu_max],
        "looks_like_ct": looks_like_ct,
        "looks_like_ct_reason": reason,
        "label_values_seen": sorted({v for r in rows for v in r["label_values"]}),
        "label_values_seen_in_training": sorted(train_seen),
        "label_values_seen_in_validation": sorted(val_seen),
        "mapped_values_missing": [v for v in local_values if v not in train_seen],
        "mapped_values_missing_in_validation": [v for v in local_values if v not in val_seen],
    }


def _axis_range(vectors: list[list[float]]) -> dict[str, list[float]]:
    if not vectors:
        return {"min": [], "max": []}
    stacked = np.asarray(vectors, float)
    return {"min": stacked.min(axis=0).tolist(), "max": stacked.max(axis=0).tolist()}


def _ct_verdict(hu_min: float, hu_max: float) -> tuple[bool, str]:
    """Whether the intensities look like CT in Hounsfield units, and why."""
    span = f"intensity range {hu_min:g}..{hu_max:g}"
    lacks = []
    if hu_min > CT_AIR_MAX_HU:
        lacks.append(f"no air (<= {CT_AIR_MAX_HU:g} HU)")
    if hu_max < CT_DENSE_MIN_HU:
        lacks.append(f"no dense tissue (>= {CT_DENSE_MIN_HU:g} HU)")
    if not lacks:
        return True, f"{span} spans air and dense tissue, as CT in Hounsfield units does"
    return False, (f"{span} has {' and '.join(lacks)}: not CT in Hounsfield units "
                   "(MR, or rescaled intensities?); VISTA3D expects CT HU")


def check_mapped_values_present(audit: dict, local_values: list[int]) -> None:
    """Refuse a mapped local value that no training label contains."""
    summary = audit["summary"]
    seen = summary["label_values_seen_in_training"]
    missing = [v for v in local_values if v not in seen]
    if missing:
        raise DataContractError(
            UNUSABLE,
            [f"mapped local value {', '.join(map(str, missing))} appears in no training label "
             f"({summary['n_train']} training cases; label values seen: {seen})"],
            ["Correct --label-mapping (or --target-anatomy with --user-label-idx) to the values "
             "your labels use, or fix the labels."])


def check_mapped_values_validated(audit: dict, local_values: list[int]) -> None:
    """Refuse a mapped local value that no validation (fold 0) label contains: its Dice would be empty."""
    rows = [r for r in audit["samples"] if r["fold"] == 0]
    seen = audit["summary"]["label_values_seen_in_validation"]
    missing = [v for v in local_values if v not in seen]
    if missing:
        names = ", ".join(r["name"] for r in rows[:SHOWN_CASES]) + (" ..." if len(rows) > SHOWN_CASES else "")
        raise DataContractError(
            UNUSABLE,
            [f"mapped local value {', '.join(map(str, missing))} occurs in training labels but in no validation "
             f"label: fold 0 ({len(rows)} case{'s' if len(rows) != 1 else ''}: {names}) holds only label values "
             f"{seen}, so its Dice would measure nothing"],
            ["Move a case whose label holds that value into fold 0 of the datalist (or give a --datalist whose "
             "fold 0 has one), or leave that value out of the mapping."])


def check_labels_look_like_labels(audit: dict) -> None:
    """Refuse a label file with more distinct values than any label map holds: an image put in labelsTr/."""
    bad = [f"{r['label']} holds {len(r['label_values'])} distinct values from {min(r['label_values'])} to "
           f"{max(r['label_values'])}" for r in audit["samples"] if len(r["label_values"]) > MAX_LABEL_VALUES]
    if bad:
        raise DataContractError(
            UNUSABLE,
            [f"{len(bad)} label file(s) look like images, not labels (a label map holds at most "
             f"{MAX_LABEL_VALUES} class values):", *shown(bad)],
            ["Put the segmentation of each case in labelsTr/ (integer class values, 0 = background), not "
             "a copy of its image."])


def nonfinite_count(flat: np.ndarray) -> int:
    """NaN and Inf voxels: they survive min/max and percentiles silently and turn into NaN losses in training."""
    return int(flat.size - np.count_nonzero(np.isfinite(flat))) if flat.dtype.kind in "fc" else 0


def check_finite_images(audit: dict) -> None:
    """Refuse images holding NaN or Inf voxels: training would turn them into NaN losses."""
    bad = [f"{r['image']} holds {r['nonfinite_voxels']} NaN or Inf voxels (of {int(np.prod(r['shape']))})"
           for r in audit["samples"] if r["nonfinite_voxels"]]
    if bad:
        raise DataContractError(
            UNUSABLE, [f"{len(bad)} image(s) hold voxels that are not numbers:", *shown(bad)],
            ["Replace them with a real value (air is about -1000 HU) when exporting, "
             "or remove those cases from the datalist."])


def overview(audit: dict, pairs: list[list[int]], names: dict[int, str], user_label_idx: int) -> dict:
    """The audit with the peer skill's summary fields first, then the anatomy verdicts, then the rest.

    The peer's `fg_*_seen` are per-case values of one label, the one the target anatomy occupies
    (`user_label_idx` when mapped, else the first mapped value), and its `anatomy` is that class's
    name; the per-label ranges and verdicts of every mapped value keep our own keys.
    """
    rows, summary = audit["samples"], audit["summary"]
    locals_ = [str(local) for local, _ in pairs]
    target = next((pair for pair in pairs if pair[0] == user_label_idx), pairs[0])
    key = str(target[0])
    head = {
        "n_pairs": audit["n_pairs"],
        "shape_consistent": not summary["shape_drift"],
        "orientation_consistent": len(summary["orientation_codes"]) <= 1,
        "orientation_codes_seen": sorted(summary["orientation_codes"]),
        "image_looks_like_ct": summary["looks_like_ct"],
        "image_hu_range_seen": summary["hu_range"],
        "fg_volumes_ml_seen": [float(r["foreground_ml"].get(key, 0.0)) for r in rows],
        "fg_components_seen": [int(r["components"].get(key, 0)) for r in rows],
        "anatomy": names.get(target[1]),
    }
    verdicts = anatomy.assess(rows, pairs, names)
    head |= {k: v for k, v in verdicts.items() if k != "anatomy"}
    head |= {"user_label_idx": user_label_idx,
             "user_label_idx_present_in_sample": user_label_idx in summary["label_values_seen"],
             "anatomy_checks": verdicts["anatomy"],
             "fg_volumes_ml_range_by_label": {k: _seen([r["foreground_ml"].get(k, 0.0) for r in rows]) for k in locals_},
             "fg_components_range_by_label": {k: _seen([r["components"].get(k, 0) for r in rows]) for k in locals_}}
    return head | {k: v for k, v in audit.items() if k not in head}


def _seen(values: list[float]) -> list[float]:
    """[min, max] over the cases."""
    return [min(values), max(values)] if values else []
