"""The model axis (#37): class lists in both of NVIDIA's formats, --new-class ids per model, dataset presets,
modality classification and refusal, the bundle default patch rule, and super-classes (#36 item 4)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import nibabel
import numpy as np
import pytest

from nvseg_bench.cli import main
from nvseg_bench.errors import ArgumentError, DataContractError, MappingError
from nvseg_bench.inputs import family, mapping_presets, modality, superclass
from nvseg_bench.inputs.labels import class_modalities, load_label_dict, resolve_mapping
from nvseg_bench.inputs.resolve import MappingAsk
from nvseg_bench.model import axis
from nvseg_bench.planning import network
from nvseg_bench.planning.forgetting import candidates

from ...helpers import REPO

sys.path.insert(0, str(REPO / "fixtures"))
import make_ctmr_bundle  # noqa: E402

MICRO = REPO / "fixtures" / "micro_model"
CT_LIST = REPO / "bundle" / "configs" / "label_dict.json"


@pytest.fixture(scope="module")
def ctmr(tmp_path_factory) -> Path:
    return make_ctmr_bundle.build(tmp_path_factory.mktemp("ctmr") / "NV-Segment-CTMR")


@pytest.fixture(scope="module")
def ctmr_list(ctmr) -> dict[str, int]:
    return load_label_dict(ctmr / "configs" / "label_dict.json")


def ask(literal=None, new=()) -> MappingAsk:
    return MappingAsk(literal, None, 1, "--label-mapping", new_classes=tuple(new))


# --- class lists and the model of a bundle ---

def test_both_class_list_formats_read_as_name_to_id(ctmr_list):
    ct = load_label_dict(CT_LIST)
    assert ct["spleen"] == 3 and len(ct) == 124 and 2 not in ct.values()
    assert ctmr_list["spleen"] == 3 and ctmr_list["kidney"] == 2 and len(ctmr_list) == 345
    assert max(ctmr_list.values()) == 345


def test_the_annotated_format_tells_each_class_its_modalities(ctmr):
    found = class_modalities(ctmr / "configs" / "label_dict.json")
    assert found[3] == ("CT", "MRI") and found[2] == ()
    assert class_modalities(CT_LIST) == {}


def test_a_bundle_dir_tells_its_model_and_a_contradicting_model_flag_is_refused(ctmr):
    assert family.model_of_bundle(ctmr) == family.CTMR
    assert family.model_of_bundle(REPO / "bundle") == family.CT
    assert family.choose_model(None, ctmr)[0].name == family.CTMR
    assert family.choose_model(None, None)[0].name == family.CT
    with pytest.raises(ArgumentError, match="--model ct was given"):
        family.choose_model("ct", ctmr)


def test_both_models_weights_are_non_commercial_and_the_plan_line_says_so_first():
    # NCLS v1 section 3.3 (both bundles' LICENSE): research or evaluation use only
    for name, title in ((family.CTMR, "NV-Segment-CTMR"), (family.CT, "NV-Segment-CT ")):
        line = family.MODELS[name].licence_line()
        assert line.startswith(f"model: {title}") and "NON-COMMERCIAL USE ONLY" in line


# --- --new-class ids come from the chosen model ---

def test_a_new_class_on_ctmr_takes_an_id_above_its_345_classes(ctmr_list):
    spec = family.MODELS[family.CTMR]
    got = resolve_mapping(ask(new=[(1, "bile duct")]), ctmr_list, "ctmr", spec.new_ids)
    assert got.pairs == [[1, 346]] and 346 not in ctmr_list.values()


def test_a_new_class_on_ct_keeps_taking_133():
    got = resolve_mapping(ask(new=[(1, "bile duct")]), load_label_dict(CT_LIST), "ct")
    assert got.pairs == [[1, 133]]


def test_a_new_class_on_a_ctmr_class_id_is_refused(ctmr_list):
    spec = family.MODELS[family.CTMR]
    with pytest.raises(MappingError, match="VISTA3D's 'fibula"):
        resolve_mapping(ask("[[1, 133]]", new=[(1, "bile duct")]), ctmr_list, "ctmr", spec.new_ids)


# --- dataset presets ---

def test_task06_preset_is_lung_tumour(ctmr):
    pairs, source = mapping_presets.pick(ctmr, "task06")
    assert pairs == [[1, 23]] and source.startswith("--mapping-preset Task06 (") and "label_mappings.json" in source


def test_an_unknown_preset_lists_the_real_ones(ctmr):
    with pytest.raises(ArgumentError) as caught:
        mapping_presets.pick(ctmr, "Task99")
    assert "AMOS22MR" in "\n".join(caught.value.evidence)


def test_a_bundle_without_presets_points_at_ctmr():
    with pytest.raises(ArgumentError, match="ships no configs/label_mappings.json"):
        mapping_presets.load(REPO / "bundle")


@pytest.fixture(scope="module")
def task06(tmp_path_factory) -> Path:
    """Eight small CT-like cases in the MSD Task06 layout (dataset.json, imagesTr/, labelsTr/)."""
    root = tmp_path_factory.mktemp("Task06_Lung")
    for folder in ("imagesTr", "labelsTr"):
        (root / folder).mkdir()
    rng, training = np.random.default_rng(37), []
    for i in range(1, 9):
        name = f"lung_{i:03d}.nii.gz"
        label = np.zeros((10, 10, 6), np.uint8)
        label[3:6, 3:6, 2:4] = 1
        nibabel.save(nibabel.Nifti1Image(rng.integers(-1000, 600, (10, 10, 6)).astype(np.int16), np.eye(4)),
                     root / "imagesTr" / name)
        nibabel.save(nibabel.Nifti1Image(label, np.eye(4)), root / "labelsTr" / name)
        training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
    (root / "dataset.json").write_text(json.dumps({"name": "Lung", "training": training}))
    return root


def test_mapping_preset_task06_on_the_task06_layout_resolves_to_lung_tumour(task06, ctmr, tmp_path):
    out = tmp_path / "out"
    code = main([str(task06), "--dry-run", "--allow-cpu", "--bundle-dir", str(ctmr), "--mapping-preset", "Task06",
                 "--pretrained-ckpt", str(MICRO / "model.pt"), "--network-config", str(MICRO / "network.json"),
                 "--output-dir", str(out)])
    assert code == 0
    doc = json.loads((out / "output.json").read_text())
    assert doc["input"]["label_mappings"] == {"default": [[1, 23]]}
    assert doc["input"]["label_mapping_resolution_text"].startswith(f"--mapping-preset Task06 ({ctmr}")
    assert doc["input"]["bundle"]["model"] == "ctmr" and doc["input"]["bundle"]["non_commercial"] is True
    assert doc["plan"]["rationale"][1].startswith("model: NV-Segment-CTMR") and "NON-COMMERCIAL" in doc["plan"]["rationale"][1]
    assert doc["input"]["modality"] == {"modality": "CT_BODY", "source": "default: every image looks like CT",
                                        "images": {"CT": 8, "MR": 0}}


def test_mapping_preset_on_the_ct_model_is_refused_before_anything_runs(task06, tmp_path, capsys):
    code = main([str(task06), "--dry-run", "--allow-cpu", "--mapping-preset", "Task06", "--output-dir",
                 str(tmp_path / "out")])
    assert code == 2 and "NV-Segment-CT ships no configs/label_mappings.json" in capsys.readouterr().err


# --- modality ---

def row(image: str, low: float, p01: float, high: float) -> dict:
    return {"image": image, "hu_min": low, "hu_p01": p01, "hu_max": high}


CT_ROW, MR_ROW = row("ct.nii.gz", -1024, -1000, 1500), row("mr.nii.gz", 0, 3, 1450)


def test_ct_has_air_and_dense_tissue_and_mr_has_neither():
    assert modality.classify(CT_ROW) == "CT" and modality.classify(MR_ROW) == "MR"
    assert modality.classify(row("cropped.nii.gz", -180, -120, 900)) == "CT"  # cropped to the body: fat, no air
    assert modality.classify(row("soft.nii.gz", -1090, -1000, 140)) == "CT"  # air around soft tissue, no bone
    assert modality.classify(row("fat-only.nii.gz", -180, -120, 150)) == "MR"  # neither air nor dense tissue
    assert modality.classify(row("zscored.nii.gz", -2.1, -1.5, 7.9)) == "MR"  # a z-scored MR spans a few units
    assert modality.classify(row("rescaled.nii.gz", 0, 0, 4095)) == "MR"  # no HU offset: refused as not HU


def test_mr_images_on_the_ct_recipe_are_refused_naming_the_files_and_ctmr():
    with pytest.raises(DataContractError) as caught:
        modality.choose(family.MODELS[family.CT], None, [MR_ROW])
    text = caught.value.render()
    assert "mr.nii.gz" in text and "--model ctmr" in text and caught.value.exit_code == 2


def test_ctmr_needs_the_modality_of_mr_images_and_keeps_the_one_given():
    spec = family.MODELS[family.CTMR]
    with pytest.raises(ArgumentError, match="cannot tell a body scan from a brain scan"):
        modality.choose(spec, None, [MR_ROW])
    assert modality.choose(spec, "MRI_BODY", [MR_ROW]).modality == "MRI_BODY"
    assert modality.choose(spec, None, [CT_ROW]).modality == "CT_BODY"
    with pytest.raises(DataContractError, match="every image looks like CT"):
        modality.choose(spec, "MRI_BRAIN", [CT_ROW])
    with pytest.raises(DataContractError, match="mixes CT and MR"):
        modality.choose(spec, "MRI_BODY", [CT_ROW, MR_ROW])


def test_brain_mri_says_it_expects_preprocessed_input_and_does_not_do_it():
    line = modality.choose(family.MODELS[family.CTMR], "MRI_BRAIN", [MR_ROW]).plan_line()
    assert "skull-stripped" in line and "does not skull-strip or register" in line


def test_an_mr_modality_on_the_ct_model_is_refused():
    with pytest.raises(ArgumentError, match="takes only CT_BODY"):
        modality.choose(family.MODELS[family.CT], "MRI_BODY", [MR_ROW])


def test_the_forgetting_pool_follows_the_modality(ctmr, ctmr_list):
    ids = set(ctmr_list.values())
    body = axis.everything_pool("MRI_BODY", ctmr, ids)
    brain = axis.everything_pool("MRI_BRAIN", ctmr, ids)
    assert 3 in body and len(body) == 50  # TotalSegmentatorMR's classes
    assert len(brain) == 132 and min(brain) == 214 and not set(body) & set(brain)  # LUMIR's brain structures
    assert axis.everything_pool("CT_BODY", ctmr, ids) is None
    assert candidates(ctmr_list, {3}, body) == tuple(sorted(set(body) - {3}))


# --- the bundle's default patch ---

def test_ctmrs_198_default_is_replaced_by_the_nearest_valid_patch_and_said(ctmr):
    found = network.network_factor(ctmr, None)  # vista3d132: multiples of 16
    assert found is not None and found.factor == 16
    line = axis.default_patch_line(ctmr, found, [128, 128, 128])
    assert "[192, 198, 128] does not fit" in line and "[192, 192, 128]" in line and "[128, 128, 128]" in line
    assert axis.default_patch_line(REPO / "bundle", found, [128, 128, 128]) is None


# --- super-classes ---

def test_a_mapping_onto_kidney_on_ct_takes_the_train_route_not_new_class():
    got = resolve_mapping(ask("[[1, 2]]"), load_label_dict(CT_LIST), "ct")
    assert got.pairs == [[1, 2]] and got.names == {2: "kidney"} and "super-class 2 trained as such" in got.resolution
    line = superclass.route_line(superclass.trained([2]))
    assert "left kidney (14) + right kidney (5)" in line and "[[1, 14], [2, 5]]" in line and "subclass" in line


def test_a_new_class_never_takes_a_super_class_id():
    with pytest.raises(MappingError, match="super-class"):
        resolve_mapping(ask("[[1, 20]]", new=[(1, "lung")]), load_label_dict(CT_LIST), "ct")


# --- --model ctmr without --bundle-dir: NVIDIA's CTMR bundle from the hub cache (tests/conftest.py lays it out) ---

def plan_ctmr_from_the_hub(out: Path) -> dict:
    code = main([str(REPO / "fixtures" / "mr_micro"), "--dry-run", "--model", "ctmr", "--modality", "MRI_BODY",
                 "--output-dir", str(out)])
    assert code == 0
    return json.loads((out / "output.json").read_text())


def verifier_bundle_finding(out: Path):
    from eval_engine.pack import load_pack
    from eval_engine.provenance import check_bundle

    return check_bundle(load_pack(out))


def test_model_ctmr_takes_the_ctmr_hub_bundle_and_records_it_unpinned(tmp_path):
    out = tmp_path / "out"
    doc = plan_ctmr_from_the_hub(out)
    bundle = doc["input"]["bundle"]
    assert bundle["source"] == "hub" and bundle["repo"] == "nvidia/NV-Segment-CTMR" and bundle["model"] == "ctmr"
    assert bundle["revision"] == make_ctmr_bundle.TEST_REVISION and bundle["matches_pinned_upstream"] is False
    assert bundle["upstream_check"]["state"] == "verified"
    assert any("unpinned" in line for line in doc["plan"]["rationale"])
    assert doc["input"]["label_dict_path"].endswith("configs/label_dict.json")


def test_the_verifier_checks_a_ctmr_hub_bundle_against_its_own_list_and_never_as_pinned(tmp_path):
    out = tmp_path / "out"
    doc = plan_ctmr_from_the_hub(out)
    found = verifier_bundle_finding(out)
    assert found.status == "pass" and found.numbers["state_derived"] == "verified"
    assert found.numbers["pinned_derived"] is False
    doc["input"]["bundle"]["matches_pinned_upstream"] = True  # a claim the unpinned model cannot make
    (out / "output.json").write_text(json.dumps(doc))
    assert verifier_bundle_finding(out).status == "fail"


def test_the_presets_command_lists_a_bundles_presets_and_refuses_the_ct_model(ctmr, capsys):
    assert main(["presets", "--bundle-dir", str(ctmr)]) == 0
    printed = capsys.readouterr().out
    assert "40 presets in" in printed and "Task06                             1 pair(s)  [[1, 23]]" in printed
    assert main(["presets"]) == 2 and "--model ctmr" in capsys.readouterr().err
    assert main(["presets", "--model", "ctmr"]) == 0  # the CTMR bundle in the test hub cache
