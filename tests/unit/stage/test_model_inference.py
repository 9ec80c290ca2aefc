"""The staged inference config on the CTMR-shaped bundle, resolved by MONAI's own config parser: a trained
super-class keeps its id (the `subclass` entry loses it), and the modality picks the "everything" classes."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # MONAI's config parser and transforms: an import of several seconds

from nvseg_bench.stage.inference import Inference, stage_inference

from ...helpers import REPO

sys.path.insert(0, str(REPO / "fixtures"))
import make_ctmr_bundle  # noqa: E402


@pytest.fixture(scope="module")
def ctmr(tmp_path_factory) -> Path:
    return make_ctmr_bundle.build(tmp_path_factory.mktemp("ctmr") / "NV-Segment-CTMR")


def staged(ctmr: Path, tmp_path: Path, trained: tuple[int, ...], modality: str | None = None):
    """The bundle's inference.json with the phase's override, parsed as `monai.bundle run` parses it."""
    from monai.bundle import ConfigParser

    run = Inference(ctmr, tmp_path / "model.pt", (tmp_path / "scan.nii.gz",), (2, 3), tmp_path / "raw", [64, 64, 64],
                    0.25, False, modality, trained)
    stack = stage_inference(run, tmp_path / "configs" / "override.json", None)
    parser = ConfigParser()
    parser.read_config(stack)
    return parser


def prompt_after_pretransform(parser) -> list[int]:
    from monai.apps.vista3d.transforms import VistaPreTransformd

    step = VistaPreTransformd(keys="image", subclass=parser.get_parsed_content("subclass"))
    return step({"label_prompt": [2, 3]})["label_prompt"]


def test_upstreams_subclass_entry_turns_kidney_into_its_two_sides(ctmr, tmp_path):
    assert prompt_after_pretransform(staged(ctmr, tmp_path, ())) == [14, 5, 3]


def test_a_run_that_trained_kidney_keeps_id_2_and_the_other_super_classes(ctmr, tmp_path):
    parser = staged(ctmr, tmp_path, (2,))
    assert prompt_after_pretransform(parser) == [2, 3]
    assert set(parser.get_parsed_content("subclass")) == {"20", "21"}
    override = json.loads((tmp_path / "configs" / "override.json").read_text())
    assert "2" not in override["subclass"]
    assert json.loads((ctmr / "configs" / "inference.json").read_text())["subclass"]["2"] == [14, 5]  # bundle untouched


def test_the_modality_picks_the_everything_classes(ctmr, tmp_path):
    body = staged(ctmr, tmp_path, (), "MRI_BODY").get_parsed_content("everything_labels")
    ct_body = staged(ctmr, tmp_path, (), "CT_BODY").get_parsed_content("everything_labels")
    assert len(body) == 50 and 3 in body and len(ct_body) == 117 and 2 not in ct_body


def test_a_config_without_those_keys_gets_neither(tmp_path):
    run = Inference(REPO / "bundle", tmp_path / "m.pt", (), (2,), tmp_path, [64, 64, 64], 0.25, False, "CT_BODY", (2,))
    assert not {"modality", "subclass"} & set(run.override())
