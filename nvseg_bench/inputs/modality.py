"""The modality axis: what kind of images a run holds, and whether the chosen model's recipe may take them.

Each image is classified from the audit's intensity figures (no file is read again): CT in Hounsfield
units holds air, its background near -1000 (the 1st percentile at or below -500), which no MR image
reaches; a scan cropped to the body without air is CT when it holds fat (-50 or below) and reaches
dense tissue (200 or more); anything else is taken for MR, whose magnitude images are non-negative (or, z-scored, span a few units). NV-Segment-CT's recipe scales a
fixed HU window and is refused on MR images (exit 2, before any phase), naming the files and
`--model ctmr`. On NV-Segment-CTMR, `--modality CT_BODY|MRI_BODY|MRI_BRAIN` chooses the "everything"
classes (its inference.json keys them by modality); CT images default to CT_BODY, and MR images need
the flag, since the figures cannot tell a body scan from a brain scan. MRI_BRAIN expects what upstream
prepares with its brain_t1_preprocess/ (skull-stripped T1, registered to the LUMIR template); this tool
states that and does not do it. Pure functions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nvseg_bench.errors import ArgumentError, DataContractError
from nvseg_bench.inputs.family import CT_BODY, MRI_BODY, MRI_BRAIN, Model

CT_IMAGE, MR_IMAGE = "CT", "MR"
AIR_MAX_HU = -500.0  # a CT's background (air, about -1000 HU) lies below this; MR intensities do not go there
DENSE_MIN_HU = 200.0  # bone and contrast reach this in any body CT
FAT_MAX_HU = -50.0  # fat lies below this: a CT cropped to the body without air still goes there
SHOWN = 5
BRAIN_NOTE = ("MRI_BRAIN expects skull-stripped T1 images registered to the LUMIR template, as NV-Segment-CTMR's "
              "brain_t1_preprocess/ prepares them; this tool does not skull-strip or register, and does not check it")


@dataclass(frozen=True)
class ModalityChoice:
    """The run's modality, where it came from, and what the audit saw (output.json `input.modality`)."""

    modality: str
    source: str  # '--modality', 'default', 'the audit: every image looks like CT'
    images: dict[str, int]  # CT / MR -> count

    def plan_line(self) -> str:
        seen = ", ".join(f"{n} {kind}" for kind, n in sorted(self.images.items()) if n)
        line = f"modality: {self.modality} ({self.source}; the audit classified the images as {seen})"
        return line + (f"; {BRAIN_NOTE}" if self.modality == MRI_BRAIN else "")

    def to_json(self) -> dict[str, Any]:
        return {"modality": self.modality, "source": self.source, "images": dict(self.images)}


def classify(row: dict[str, Any]) -> str:
    """CT or MR for one audited image row (its hu_min, hu_p01 and hu_max)."""
    if row["hu_p01"] <= AIR_MAX_HU:  # air: a soft-tissue crop padded with air is CT too, bone or not
        return CT_IMAGE
    return CT_IMAGE if row["hu_min"] <= FAT_MAX_HU and row["hu_max"] >= DENSE_MIN_HU else MR_IMAGE


def _named(rows: list[dict[str, Any]]) -> str:
    shown = ", ".join(f"{r['image']} ({r['hu_min']:g}..{r['hu_max']:g})" for r in rows[:SHOWN])
    return shown + (f" and {len(rows) - SHOWN} more" if len(rows) > SHOWN else "")


def choose(chosen: Model, asked: str | None, rows: list[dict[str, Any]]) -> ModalityChoice:
    """The run's modality for the model and the audited rows; refuses a recipe the images do not fit."""
    if asked is not None and asked not in chosen.modalities:
        raise ArgumentError(f"--modality {asked} was given, and {chosen.title} takes only {', '.join(chosen.modalities)}.",
                            fix=["Finetune MR images on NV-Segment-CTMR: --model ctmr --modality MRI_BODY (or "
                                 "MRI_BRAIN)." if asked != CT_BODY else f"Pass --modality {chosen.modalities[0]}."])
    mr = [r for r in rows if classify(r) == MR_IMAGE]
    ct = [r for r in rows if classify(r) == CT_IMAGE]
    counts = {CT_IMAGE: len(ct), MR_IMAGE: len(mr)}
    if mr and ct:
        raise DataContractError("the dataset mixes CT and MR images; a run finetunes one modality",
                                [f"{len(mr)} image(s) look like MR (no air or fat, or no dense tissue): "
                                 f"{_named(mr)}", f"{len(ct)} image(s) look like CT in Hounsfield units."],
                                ["Split the datalist by modality and finetune each part on its own run."])
    if mr and (chosen.modalities == (CT_BODY,) or asked == CT_BODY):
        raise DataContractError(
            f"{len(mr)} image(s) are not CT in Hounsfield units, and the recipe asked for ({chosen.title}, "
            f"{CT_BODY}) is CT-only",
            [f"no air (near -1000 HU) or fat (below {FAT_MAX_HU:g}), or no dense tissue (above {DENSE_MIN_HU:g}), in: "
             f"{_named(mr)}",
             "its preprocessing scales a fixed HU window, which maps MR intensities to noise"],
            ["Finetune MR images on NV-Segment-CTMR, whose recipe scales each image by its 1st..99th percentile: "
             "--model ctmr --modality MRI_BODY (abdomen, pelvis, thorax) or --modality MRI_BRAIN (skull-stripped, "
             "template-registered T1). If these are CT, export them in Hounsfield units."])
    if mr and asked is None:
        raise ArgumentError(f"{len(mr)} image(s) look like MR, and the audit cannot tell a body scan from a brain scan.",
                            evidence=[f"e.g. {_named(mr)}"],
                            fix=[f"Pass --modality {MRI_BODY} (abdomen, pelvis, thorax) or --modality {MRI_BRAIN} "
                                 "(skull-stripped, template-registered T1)."])
    if ct and asked in (MRI_BODY, MRI_BRAIN):
        raise DataContractError(f"--modality {asked} was given, and every image looks like CT in Hounsfield units",
                                [f"e.g. {_named(ct)}"],
                                [f"Pass --modality {CT_BODY} (or leave it out) for CT images."])
    if asked is not None:
        return ModalityChoice(asked, "--modality", counts)
    return ModalityChoice(CT_BODY, "default: every image looks like CT", counts)
