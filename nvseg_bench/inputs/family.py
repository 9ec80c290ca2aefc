"""The model family: which VISTA3D bundle a run finetunes (`--model ct|ctmr`), as data.

NVIDIA publishes two bundles of the same `vista3d132` network (NVIDIA-Medtech/NV-Segment-CTMR):
NV-Segment-CT (132 CT class ids; its class list maps a name to an integer id) and NV-Segment-CTMR
(345 class ids over CT, body MRI and brain MRI, started from the CT checkpoint; its class list maps
a name to `{index, datasets, CT, MRI}` and it ships `configs/label_mappings.json`). This module
holds what differs between them: the hub source, the licence, the modalities, the ids a
`--new-class` may take; and it tells which one a `--bundle-dir` is from its files. The class list
itself is always read from the bundle (labels.py). Lives in inputs/ so that labels, the audit and
the planning can read it (tests/repo/test_layers.py). No torch, no monai.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from nvseg_bench.errors import ArgumentError

CT, CTMR = "ct", "ctmr"
CT_BODY, MRI_BODY, MRI_BRAIN = "CT_BODY", "MRI_BODY", "MRI_BRAIN"
MODALITIES = (CT_BODY, MRI_BODY, MRI_BRAIN)
MAPPINGS_FILE = "configs/label_mappings.json"
# vista3d132's class head (ClassMappingClassify) embeds 512 class ids: a new class must stay below it
CLASS_EMBEDDINGS = 512


@dataclass(frozen=True)
class Model:
    """One bundle of the family: where its recipe and weights come from, under which licence, for what images."""

    name: str  # ct | ctmr
    title: str
    hub_repo: str
    revision: str  # a commit when pinned; "main" when no revision could be pinned (`pinned` False)
    pinned: bool
    hub_file: str
    licence: str
    non_commercial: bool
    modalities: tuple[str, ...]
    new_ids: range  # ids a --new-class may take: above the model's classes, below 'no class' or the embeddings

    def licence_line(self, why: str = "") -> str:
        """The plan's line after the preset's: the model, why it is this one, and its licence (non-commercial first)."""
        use = "NON-COMMERCIAL USE ONLY: " if self.non_commercial else ""
        return f"model: {self.title} (--model {self.name}{'; ' + why if why else ''}); {use}licence {self.licence}"

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "title": self.title, "hub_repo": self.hub_repo, "revision": self.revision,
                "revision_pinned": self.pinned, "licence": self.licence, "non_commercial": self.non_commercial,
                "modalities": list(self.modalities)}


MODELS: dict[str, Model] = {
    CT: Model(CT, "NV-Segment-CT (VISTA3D, vista3d132)", "nvidia/NV-Segment-CT",
              "afb51518689f71e6abb367ee6301b2cd0225c66a", True, "vista3d_pretrained_model/model.pt",
              # the CT bundle's LICENSE, "Model Weights License" section 3.3: research or evaluation use only
              "code Apache-2.0, weights NVIDIA NCLS v1, non-commercial (see the bundle's LICENSE)", True, (CT_BODY,),
              range(133, 255)),
    # upstream's README: weights under the same name on the hub, under the same NCLS v1 licence, which
    # its docs call non-commercial. No revision of nvidia/NV-Segment-CTMR could be found to pin: the hub's main is used.
    CTMR: Model(CTMR, "NV-Segment-CTMR (VISTA3D, vista3d132, CT and MRI)", "nvidia/NV-Segment-CTMR", "main", False,
                "vista3d_pretrained_model/model.pt",
                "code Apache-2.0, weights NVIDIA NCLS v1, non-commercial (see the bundle's LICENSE)", True, MODALITIES,
                range(346, CLASS_EMBEDDINGS)),
}


def model(name: str) -> Model:
    try:
        return MODELS[name]
    except KeyError:
        raise ArgumentError(f"--model {name!r} is not a model of this tool.",
                            fix=[f"Pass --model {' or --model '.join(MODELS)}."]) from None


def is_annotated_class_list(data: object) -> bool:
    """NV-Segment-CTMR's class list format: each name maps to an object holding its `index`."""
    return isinstance(data, dict) and bool(data) and all(isinstance(v, dict) and "index" in v for v in data.values())


def model_of_bundle(bundle_dir: Path) -> str:
    """Which model a bundle folder holds, from its files: CTMR ships label_mappings.json and the annotated class list."""
    if (bundle_dir / MAPPINGS_FILE).is_file():
        return CTMR
    for place in (bundle_dir / "configs" / "label_dict.json", bundle_dir / "label_dict.json"):
        try:
            data = json.loads(place.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        return CTMR if is_annotated_class_list(data) else CT
    return CT


def choose_model(asked: str | None, bundle_dir: Path | None) -> tuple[Model, str]:
    """The run's model and why: a --bundle-dir's files decide (a --model that contradicts them is refused),
    else --model, else ct."""
    if bundle_dir is None:
        return model(asked or CT), ("given" if asked else "the default")
    found = model_of_bundle(bundle_dir)
    if asked is not None and asked != found:
        raise ArgumentError(f"--model {asked} was given, and --bundle-dir {bundle_dir} holds the {found} bundle.",
                            evidence=[f"{bundle_dir / MAPPINGS_FILE} is {'present' if found == CTMR else 'absent'}, "
                                      "and the class list is in the matching format."],
                            fix=[f"Drop --model (the bundle decides), or point --bundle-dir at the NV-Segment-"
                                 f"{asked.upper()}/ folder of NVIDIA-Medtech/NV-Segment-CTMR."])
    return MODELS[found], f"read from --bundle-dir {bundle_dir}"


def free_new_ids(chosen: Model, known: set[int]) -> list[int]:
    """The ids a --new-class may take on this model: its range, without any id its class list uses."""
    return [i for i in chosen.new_ids if i not in known]


def new_ids_text(chosen: Model) -> str:
    return f"{chosen.new_ids.start}..{chosen.new_ids.stop - 1}"
