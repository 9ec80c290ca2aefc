"""A prepared run: everything checked, planned and staged before the first phase starts (prepare.py makes
it, frozen; the phases, the evidence and the output read it). Its own module so that prepare.py and the
steps after it do not import each other.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nvseg_bench.inputs import labels
from nvseg_bench.inputs.testing import TestSplit
from nvseg_bench.paths import phase_log
from nvseg_bench.inputs.modality import ModalityChoice
from nvseg_bench.inputs.request import Request
from nvseg_bench.inputs.resolve import Resolved
from nvseg_bench.model.bundle_source import BundleSource
from nvseg_bench.model.weights import Weights
from nvseg_bench.planning.forgetting import ForgettingPlan
from nvseg_bench.planning.plan import Plan
from nvseg_bench.stage import preprocess_cache
from nvseg_bench.stage.configs import Staged
from nvseg_bench.stage.resume import ResumePoint

FINETUNED_NAME = "model_finetune.pt"


@dataclass(frozen=True)
class Prepared:
    request: Request
    resolved: Resolved
    bundle_dir: Path
    dataset_dir: Path
    out_dir: Path
    mapping: labels.ResolvedMapping
    entries: list[dict]
    datalist_path: Path
    audit: dict[str, Any]
    env: dict[str, Any]
    plan: Plan
    weights: Weights
    staged: Staged
    commands: dict[str, list[str]]  # phase name -> its command, in run order
    cache: preprocess_cache.PreprocessCache | None = None
    digests: dict[str, str] = field(default_factory=dict)  # sha256 of every dataset file, by absolute path
    cache_note: str | None = None  # why there is no preprocessing cache, when there is none
    label_dict_path: Path | None = None  # the class list the mapping was resolved against
    bundle: BundleSource | None = None  # where bundle_dir came from (input.bundle)
    resume_point: ResumePoint | None = None  # --resume: where the stopped run continues (stage/resume.py)
    forgetting: ForgettingPlan | None = None  # the forgetting check's classes, when it runs (planning/forgetting.py)
    modality: ModalityChoice | None = None  # the images' modality and where it came from (inputs/modality.py)
    test_split: TestSplit | None = None  # the datalist's labelled `testing` cases (inputs/testing.py), when it has any

    def planned_log(self) -> Path | None:
        """The log the first phase writes: runtime.log_path of a run that started no phase."""
        return phase_log(self.out_dir, next(iter(self.commands))) if self.commands else None
