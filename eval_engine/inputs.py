"""The trusted inputs: the dataset, the datalist and the pretrained weights the verifier scores a pack
against, as its caller gives them, and their comparison with the digests the pack recorded.

A pack names its own dataset and checkpoint; a pack that names a dataset of its choosing (labels
swapped for its own predictions) would confirm itself. So the labels, the validation cases and the
pretrained weights come from the command line (`--dataset-dir`, `--datalist`, `--pretrained-ckpt`;
in fixture mode the fixture is the dataset). Where the caller gives none, the verifier may read what
the pack names, and says so on every finding that used it ("labels as the pack names them",
"validation cases as the pack names them", "pretrained weights as the pack names them").

The pack's recorded digests (manifest.json `inputs`) are compared with the trusted files by content
(sha256), never by path: a pack made on another copy of the same data passes, one whose files differ
fails naming them. Never writes; reads only the files listed here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from .findings import Finding, failed, passed, skipped, warned
from .pack import Pack, sha256_file

PACK_LABELS = "labels as the pack names them"
PACK_CASES = "validation cases as the pack names them"
PACK_WEIGHTS = "pretrained weights as the pack names them"


@dataclass(frozen=True)
class Inputs:
    """What the labels, validation cases and pretrained weights are read from, and who named each."""

    dataset_dir: Path | None
    datalist: Path | None
    pretrained_ckpt: Path | None
    labels_trusted: bool  # the dataset came from the caller
    cases_trusted: bool  # the datalist came from the caller (given, or the caller's dataset's own)
    weights_trusted: bool

    @property
    def caveats(self) -> list[str]:
        """What the pack, not the caller, named: said on every finding that used it and on the verdict line."""
        return [said for said, trusted in ((PACK_LABELS, self.labels_trusted), (PACK_CASES, self.cases_trusted),
                                           (PACK_WEIGHTS, self.weights_trusted)) if not trusted]

    def labels_said(self, detail: str) -> str:
        """A finding's detail, with the caveat when the labels or the validation cases came from the pack."""
        said = [c for c in self.caveats if c != PACK_WEIGHTS and c not in detail]
        return f"{detail} ({'; '.join(said)})" if said else detail

    def weights_said(self, detail: str) -> str:
        return detail if self.weights_trusted else f"{detail} ({PACK_WEIGHTS})"

    def to_json(self) -> dict[str, Any]:
        return {"dataset_dir": str(self.dataset_dir or ""), "datalist": str(self.datalist or ""),
                "pretrained_ckpt": str(self.pretrained_ckpt or ""),
                "labels": "trusted" if self.labels_trusted else PACK_LABELS,
                "validation_cases": "trusted" if self.cases_trusted else PACK_CASES,
                "weights": "trusted" if self.weights_trusted else PACK_WEIGHTS}


def choose(pack: Pack, dataset_dir: Path | None, datalist: Path | None, pretrained: Path | None) -> Inputs:
    """The inputs a check reads: the caller's where given, else (said so) the pack's.

    Without --datalist the validation cases are the datalist the pack names (a cross-validation fold's
    or a generated split lives in the pack); they count as the caller's only when that file lies in the
    caller's dataset dir."""
    inp = pack.output.get("input") or {}
    named_list = pack.locate(inp.get("datalist"))
    weights = pretrained or pack.locate((pack.output.get("output") or {}).get("pretrained_ckpt"))
    in_dataset = dataset_dir is not None and named_list is not None and _within(named_list, dataset_dir)
    return Inputs(dataset_dir=dataset_dir or pack.locate(inp.get("dataset_dir")), datalist=datalist or named_list,
                  pretrained_ckpt=weights, labels_trusted=dataset_dir is not None,
                  cases_trusted=datalist is not None or in_dataset, weights_trusted=pretrained is not None)


def _within(path: Path, root: Path) -> bool:
    path, root = path.resolve(), root.resolve()
    return root in path.parents


def validation_entries(inputs: Inputs) -> list[dict[str, str]] | str:
    """The datalist's fold-0 entries (the validation cases), or why they cannot be had.

    A datalist the pack named may not send a read outside the dataset: its paths must be relative and
    free of `..`."""
    if inputs.datalist is None or not inputs.datalist.is_file():
        return inputs.labels_said(f"the datalist {inputs.datalist} is not reachable")
    if inputs.dataset_dir is None or not inputs.dataset_dir.is_dir():
        return inputs.labels_said(f"the dataset {inputs.dataset_dir} is not reachable")
    try:
        entries = [e for e in json.loads(inputs.datalist.read_text())["training"] if int(e.get("fold", -1)) == 0]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return inputs.labels_said(f"the datalist {inputs.datalist} is not a datalist ({exc})")
    if not inputs.cases_trusted:
        wild = [e.get("label") for e in entries if not _stays_inside(str(e.get("label", "")))]
        if wild:
            return f"the pack's datalist sends label reads outside its dataset: {wild[:3]}"
    return entries


def _stays_inside(rel: str) -> bool:
    path = PurePosixPath(rel)
    return bool(rel) and not path.is_absolute() and ".." not in path.parts


def check_dataset(pack: Pack, inputs: Inputs) -> Finding:
    """The dataset files the pack recorded, by content, against the dataset the labels are read from."""
    name = "integrity.dataset"
    recorded = ((pack.manifest or {}).get("inputs") or {}).get("dataset") or {}
    files = recorded.get("files") or {}
    if not files:
        return warned(name, "the manifest records no dataset files")
    root = inputs.dataset_dir
    if root is None or not root.is_dir():
        return skipped(name, inputs.labels_said(f"{root} is not reachable here"))
    wild = sorted(rel for rel in files if not _stays_inside(rel))
    if wild:
        return failed(name, f"the manifest lists dataset files outside the dataset: {', '.join(wild[:5])}", wild=wild)
    changed = sorted(rel for rel, meta in files.items()
                     if not (root / rel).is_file() or sha256_file(root / rel) != (meta or {}).get("sha256"))
    numbers = {"files": len(files), "changed": changed, "dataset_dir": str(root),
               "recorded_dataset_dir": recorded.get("dataset_dir")}
    if changed:
        return failed(name, inputs.labels_said(f"{len(changed)} of the {len(files)} dataset files the run recorded "
                                               f"differ in {root} by content: {', '.join(changed[:5])}"), **numbers)
    return passed(name, inputs.labels_said(f"all {len(files)} dataset files the run recorded match {root} "
                                           "by content"), **numbers)


def check_pretrained(pack: Pack, inputs: Inputs) -> Finding:
    """The pretrained checkpoint the pack recorded, by content, against the one the comparison reads."""
    name = "integrity.pretrained_ckpt"
    recorded = ((pack.manifest or {}).get("inputs") or {}).get("pretrained_ckpt") or {}
    path = inputs.pretrained_ckpt
    if not recorded.get("sha256"):
        return warned(name, "the manifest records no pretrained checkpoint digest")
    if path is None or not path.is_file():
        return skipped(name, inputs.weights_said(f"{path} is not reachable here"))
    actual = sha256_file(path)
    numbers = {"recorded": recorded.get("sha256"), "actual": actual, "path": str(path)}
    if actual != recorded["sha256"]:
        return failed(name, inputs.weights_said(f"{path} differs by content from the checkpoint the run recorded"),
                      **numbers)
    return passed(name, inputs.weights_said(f"{path} matches the run's pretrained checkpoint by content"), **numbers)
