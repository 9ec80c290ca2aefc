"""Data contract and audit on tiny NIfTI datasets built in tmp_path."""
from __future__ import annotations

import json
from pathlib import Path

import nibabel
import numpy as np
import pytest

from nvseg_bench.inputs.dataset import (AFFINE_ATOL, GENERATED_SOURCE, CasePair, check_pairs_geometry, find_pairs,
                                        five_fold_datalist, load_datalist, prepare_datalist)
from nvseg_bench.inputs.audit import (MAX_LABEL_VALUES, audit_dataset, check_finite_images,
                                      check_labels_look_like_labels, check_mapped_values_present,
                                      check_mapped_values_validated, overview)
from nvseg_bench.errors import ArgumentError, DataContractError

SHAPE = (8, 8, 8)


def save(path: Path, array: np.ndarray, affine: np.ndarray | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nibabel.save(nibabel.Nifti1Image(array, np.eye(4) if affine is None else affine), str(path))


def ct_image() -> np.ndarray:
    """Air everywhere, a bright 'bone' voxel: intensities like CT in HU."""
    image = np.full(SHAPE, -1000, dtype=np.int16)
    image[0, 0, 0] = 1200
    return image


def cube_label(value: int = 1) -> np.ndarray:
    label = np.zeros(SHAPE, dtype=np.uint8)
    label[2:4, 2:4, 2:4] = value
    return label


def add_case(root: Path, name: str, label: np.ndarray | None = None, **kw) -> None:
    save(root / "imagesTr" / f"{name}.nii.gz", ct_image(), kw.get("affine"))
    save(root / "labelsTr" / f"{name}.nii.gz", cube_label() if label is None else label,
         kw.get("label_affine", kw.get("affine")))


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    for i in range(3):
        add_case(root, f"case_{i}")
    return root


def write_datalist(path: Path, training: list) -> Path:
    path.write_text(json.dumps({"training": training}))
    return path


def entry(name: str, fold: int) -> dict:
    return {"image": f"imagesTr/{name}.nii.gz", "label": f"labelsTr/{name}.nii.gz", "fold": fold}


# --- pairing -------------------------------------------------------------------------------

def test_pairs_are_matched_by_basename_and_relative(dataset):
    pairs = find_pairs(dataset)
    assert [p.name for p in pairs] == ["case_0", "case_1", "case_2"]
    assert pairs[0] == CasePair("case_0", Path("imagesTr/case_0.nii.gz"),
                                Path("labelsTr/case_0.nii.gz"))


def test_uncompressed_nii_files_pair_too(tmp_path):
    save(tmp_path / "imagesTr" / "a.nii", ct_image())
    save(tmp_path / "labelsTr" / "a.nii", cube_label())
    assert find_pairs(tmp_path)[0].label == Path("labelsTr/a.nii")


def test_hidden_macos_files_are_not_cases(dataset):
    (dataset / "imagesTr" / "._case_0.nii.gz").write_bytes(b"\x00\x05\x16\x07")
    assert len(find_pairs(dataset)) == 3


def test_a_missing_dataset_dir_is_refused(tmp_path):
    with pytest.raises(DataContractError, match="does not exist"):
        find_pairs(tmp_path / "nowhere")


def test_a_dataset_without_images_is_refused(tmp_path):
    (tmp_path / "imagesTr").mkdir()
    with pytest.raises(DataContractError, match="holds no .nii.gz or .nii images"):
        find_pairs(tmp_path)


def test_every_unmatched_file_is_named(dataset):
    (dataset / "labelsTr" / "case_1.nii.gz").unlink()
    save(dataset / "labelsTr" / "orphan.nii.gz", cube_label())
    with pytest.raises(DataContractError) as caught:
        find_pairs(dataset)
    text = str(caught.value)
    assert "labelsTr/ has no label for 1 images: case_1.nii.gz" in text
    assert "imagesTr/ has no image for 1 labels: orphan.nii.gz" in text
    assert "pass --datalist" in text


def test_a_long_list_of_unmatched_files_is_shortened(dataset):
    for i in range(13):
        (dataset / "imagesTr" / f"extra_{i:02d}.nii.gz").write_bytes(b"")
    with pytest.raises(DataContractError, match="no label for 13 images: .*extra_09.nii.gz and 3 more"):
        find_pairs(dataset)


def test_msd_dataset_json_decides_the_pairs(dataset):
    (dataset / "imagesTr" / "stray.nii.gz").write_bytes(b"")
    msd = [{"image": "./imagesTr/case_2.nii.gz", "label": "./labelsTr/case_2.nii.gz"}]
    (dataset / "dataset.json").write_text(json.dumps({"name": "x", "training": msd}))
    assert find_pairs(dataset) == [
        CasePair("case_2", Path("imagesTr/case_2.nii.gz"), Path("labelsTr/case_2.nii.gz"))]


# --- datalist ------------------------------------------------------------------------------

def test_a_valid_datalist_keeps_its_entries(dataset, tmp_path):
    given = write_datalist(tmp_path / "dl.json", [entry("case_0", 0), entry("case_1", 1)])
    assert load_datalist(given, dataset) == [entry("case_0", 0), entry("case_1", 1)]


def test_unparsable_datalist_names_file_and_position(dataset, tmp_path):
    bad = tmp_path / "dl.json"
    bad.write_text('{"training": [\n  {"image": }\n]}')
    with pytest.raises(DataContractError, match=r"dl.json is not valid JSON: .* line 2, column"):
        load_datalist(bad, dataset)


def test_datalist_entry_without_a_label_is_named(dataset, tmp_path):
    given = write_datalist(tmp_path / "dl.json", [entry("case_0", 0), {"image": "x", "fold": 1}])
    with pytest.raises(DataContractError, match=r"training\[1\]: missing label"):
        load_datalist(given, dataset)


def test_datalist_fold_must_be_an_integer(dataset, tmp_path):
    given = write_datalist(tmp_path / "dl.json", [entry("case_0", 0), dict(entry("case_1", 0), fold="1")])
    with pytest.raises(DataContractError, match=r"training\[1\]: fold '1' is not an integer"):
        load_datalist(given, dataset)


def test_datalist_path_escaping_the_dataset_is_refused(dataset, tmp_path):
    sneaky = dict(entry("case_1", 1), image="imagesTr/../../secret.nii.gz")
    given = write_datalist(tmp_path / "dl.json", [entry("case_0", 0), sneaky])
    with pytest.raises(DataContractError, match=r"training\[1\] image: 'imagesTr/../../secret"):
        load_datalist(given, dataset)


def test_datalist_absolute_path_is_refused(dataset, tmp_path):
    absolute = dict(entry("case_1", 1), label=str(dataset / "labelsTr" / "case_1.nii.gz"))
    given = write_datalist(tmp_path / "dl.json", [entry("case_0", 0), absolute])
    with pytest.raises(DataContractError, match=r"absolute or leave the dataset dir") as caught:
        load_datalist(given, dataset)
    assert "training[1] label" in str(caught.value)


def test_datalist_dotdot_that_stays_inside_is_accepted(dataset, tmp_path):
    inside = dict(entry("case_1", 1), image="labelsTr/../imagesTr/case_1.nii.gz")
    given = write_datalist(tmp_path / "dl.json", [entry("case_0", 0), inside])
    assert load_datalist(given, dataset)[1]["image"] == "labelsTr/../imagesTr/case_1.nii.gz"


def test_datalist_files_that_do_not_exist_are_listed(dataset, tmp_path):
    given = write_datalist(tmp_path / "dl.json", [entry("case_0", 0), entry("ghost", 1)])
    with pytest.raises(DataContractError, match="2 files named in .* do not exist") as caught:
        load_datalist(given, dataset)
    assert "imagesTr/ghost.nii.gz, labelsTr/ghost.nii.gz" in str(caught.value)


def test_datalist_without_fold_0_has_no_validation_cases(dataset, tmp_path):
    given = write_datalist(tmp_path / "dl.json", [entry("case_0", 1), entry("case_1", 2)])
    with pytest.raises(DataContractError, match="No validation cases: no entry in .*dl.json has fold 0"):
        load_datalist(given, dataset)


def test_datalist_with_only_fold_0_has_no_training_cases(dataset, tmp_path):
    given = write_datalist(tmp_path / "dl.json", [entry("case_0", 0), entry("case_1", 0)])
    with pytest.raises(DataContractError, match="No training cases"):
        load_datalist(given, dataset)


def test_an_image_in_fold_0_and_a_training_fold_is_refused_naming_both_folds(dataset, tmp_path):
    given = write_datalist(tmp_path / "dl.json", [entry("case_0", 0), entry("case_1", 1), entry("case_0", 3)])
    with pytest.raises(DataContractError, match="validation Dice would be measured on training data") as caught:
        load_datalist(given, dataset)
    assert "case_0: fold 0 as 'imagesTr/case_0.nii.gz' and fold 3 as 'imagesTr/case_0.nii.gz'" in str(caught.value)


def test_the_same_image_file_under_another_spelling_counts_as_a_leak(dataset, tmp_path):
    respelled = dict(entry("case_0", 0), image="labelsTr/../imagesTr/case_0.nii.gz")
    given = write_datalist(tmp_path / "dl.json", [entry("case_0", 2), entry("case_1", 1), respelled])
    with pytest.raises(DataContractError, match="fold 0 as 'labelsTr/../imagesTr/case_0.nii.gz' and fold 2"):
        load_datalist(given, dataset)


def test_a_linked_copy_of_a_validation_image_counts_as_a_leak(dataset, tmp_path):
    (dataset / "imagesTr" / "again.nii.gz").symlink_to(dataset / "imagesTr" / "case_0.nii.gz")
    linked = dict(entry("case_0", 1), image="imagesTr/again.nii.gz")
    given = write_datalist(tmp_path / "dl.json", [entry("case_0", 0), linked])
    with pytest.raises(DataContractError, match="case_0: fold 0 as 'imagesTr/case_0.nii.gz' and fold 1 as "
                                                "'imagesTr/again.nii.gz'"):
        load_datalist(given, dataset)


def test_an_image_listed_twice_in_training_folds_is_not_a_leak(dataset, tmp_path):
    given = write_datalist(tmp_path / "dl.json", [entry("case_0", 0), entry("case_1", 1), entry("case_1", 2)])
    assert len(load_datalist(given, dataset)) == 3


# --- five-fold split -----------------------------------------------------------------------

def pairs_named(names: list[str]) -> list[CasePair]:
    return [CasePair(n, Path(f"imagesTr/{n}.nii.gz"), Path(f"labelsTr/{n}.nii.gz")) for n in names]


def test_five_fold_split_is_deterministic_and_order_free():
    names = [f"lung_{i:03d}" for i in range(63)]
    first = five_fold_datalist(pairs_named(names))
    assert five_fold_datalist(pairs_named(list(reversed(names)))) == first
    assert five_fold_datalist(pairs_named(names), seed=1) != first


def test_five_fold_split_of_63_cases_validates_13():
    split = five_fold_datalist(pairs_named([f"lung_{i:03d}" for i in range(63)]))["training"]
    assert sum(e["fold"] == 0 for e in split) == 13
    assert {e["fold"] for e in split} == {0, 1, 2, 3, 4}


def test_five_fold_split_of_two_cases_has_one_validation_and_one_training():
    split = five_fold_datalist(pairs_named(["a", "b"]))["training"]
    assert sorted(e["fold"] for e in split) == [0, 1]
    assert split[0] == {"image": "imagesTr/a.nii.gz", "label": "labelsTr/a.nii.gz",
                        "fold": split[0]["fold"]}


def test_five_fold_split_needs_two_cases():
    with pytest.raises(DataContractError, match="found 1 image/label pair"):
        five_fold_datalist(pairs_named(["a"]))


# --- geometry ------------------------------------------------------------------------------

def test_matching_pairs_pass_the_geometry_check(dataset):
    assert check_pairs_geometry([entry("case_0", 0), entry("case_1", 1)], dataset) is None  # passes: no refusal


def test_shape_mismatch_names_the_label_and_both_shapes(dataset):
    save(dataset / "labelsTr" / "case_1.nii.gz", np.zeros((8, 8, 6), np.uint8))
    with pytest.raises(DataContractError, match=r"labelsTr/case_1.nii.gz has shape \(8, 8, 6\), "
                                                r"imagesTr/case_1.nii.gz has \(8, 8, 8\)"):
        check_pairs_geometry([entry("case_0", 0), entry("case_1", 1)], dataset)


def test_affine_mismatch_names_the_label_and_both_affines(dataset):
    shifted = np.eye(4)
    shifted[0, 3] = 5.0
    save(dataset / "labelsTr" / "case_1.nii.gz", cube_label(), shifted)
    with pytest.raises(DataContractError, match=r"labelsTr/case_1.nii.gz has affine \[\[1.0, 0.0, 0.0, 5.0\]"):
        check_pairs_geometry([entry("case_1", 1)], dataset)


def test_affine_difference_below_tolerance_passes(dataset):
    nudged = np.eye(4)
    nudged[0, 3] = 1e-4
    assert 1e-4 < AFFINE_ATOL
    save(dataset / "labelsTr" / "case_1.nii.gz", cube_label(), nudged)
    assert check_pairs_geometry([entry("case_1", 1)], dataset) is None  # passes: no refusal
    nudged[0, 3] = 10 * AFFINE_ATOL  # the same label moved past the tolerance is refused
    save(dataset / "labelsTr" / "case_1.nii.gz", cube_label(), nudged)
    with pytest.raises(DataContractError, match="labelsTr/case_1.nii.gz has affine"):
        check_pairs_geometry([entry("case_1", 1)], dataset)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_corrupt_nifti_is_named_not_a_traceback(tmp_path, suffix):
    add_case(tmp_path, "good")
    save(tmp_path / "imagesTr" / f"bad{suffix}", ct_image())
    (tmp_path / "labelsTr" / f"bad{suffix}").write_bytes(b"this is not a NIfTI file" * 4)
    bad = {"image": f"imagesTr/bad{suffix}", "label": f"labelsTr/bad{suffix}", "fold": 1}
    with pytest.raises(DataContractError, match=f"labelsTr/bad{suffix} is not a readable NIfTI file"):
        check_pairs_geometry([entry("good", 0), bad], tmp_path)


def test_truncated_voxel_data_is_named_by_the_audit(dataset):
    path = dataset / "labelsTr" / "case_1.nii"
    save(path, cube_label())
    path.write_bytes(path.read_bytes()[:400])  # header intact, voxels cut off
    bad = {"image": "imagesTr/case_1.nii.gz", "label": "labelsTr/case_1.nii", "fold": 1}
    with pytest.raises(DataContractError, match="labelsTr/case_1.nii is not a readable NIfTI"):
        audit_dataset([bad], dataset, [1])


# --- audit ---------------------------------------------------------------------------------

def test_foreground_volume_uses_the_voxel_spacing(tmp_path):
    add_case(tmp_path, "c", affine=np.diag([2.0, 2.0, 2.0, 1.0]))  # 2x2x2 cube of 8 mm^3 voxels
    row = audit_dataset([entry("c", 1)], tmp_path, [1])["samples"][0]
    assert row["spacing"] == [2.0, 2.0, 2.0]
    assert row["foreground_ml"] == {"1": pytest.approx(0.064)}


def test_components_are_counted_per_mapped_value(tmp_path):
    label = cube_label(1)
    label[6, 6, 6] = 1  # a second, separate blob of value 1
    label[0, 7, 0] = 2  # value 2 is not mapped: not counted
    add_case(tmp_path, "c", label)
    row = audit_dataset([entry("c", 1)], tmp_path, [1])["samples"][0]
    assert row["components"] == {"1": 2}
    assert row["label_values"] == [0, 1, 2]


def test_orientation_code_follows_the_affine(tmp_path):
    add_case(tmp_path, "ras")
    add_case(tmp_path, "lps", affine=np.diag([-1.0, -1.0, 1.0, 1.0]))
    audit = audit_dataset([entry("ras", 0), entry("lps", 1)], tmp_path, [1])
    assert [r["orientation"] for r in audit["samples"]] == ["RAS", "LPS"]
    assert audit["summary"]["orientation_codes"] == {"RAS": 1, "LPS": 1}


def test_ct_intensities_look_like_ct(dataset):
    summary = audit_dataset([entry("case_0", 0), entry("case_1", 1)], dataset, [1])["summary"]
    assert summary["hu_range"] == [-1000.0, 1200.0]
    assert summary["looks_like_ct"] is True


def test_rescaled_intensities_do_not_look_like_ct(tmp_path):
    save(tmp_path / "imagesTr" / "mr.nii.gz", np.linspace(0, 255, 512).reshape(SHAPE))
    save(tmp_path / "labelsTr" / "mr.nii.gz", cube_label())
    summary = audit_dataset([entry("mr", 1)], tmp_path, [1])["summary"]
    assert summary["looks_like_ct"] is False
    assert "no air" in summary["looks_like_ct_reason"]


def test_audit_summary_records_drift_and_values(tmp_path):
    add_case(tmp_path, "a", cube_label(1))
    save(tmp_path / "imagesTr" / "b.nii.gz", np.full((8, 8, 4), -1000, np.int16), np.diag([1, 1, 3, 1.0]))
    save(tmp_path / "labelsTr" / "b.nii.gz", np.full((8, 8, 4), 2, np.uint8), np.diag([1, 1, 3, 1.0]))
    audit = audit_dataset([entry("a", 0), entry("b", 1)], tmp_path, [1, 2])
    summary = audit["summary"]
    assert audit["n_pairs"] == 2 and summary["n_train"] == 1 and summary["n_val"] == 1
    assert summary["shape_drift"] is True
    assert summary["spacing_range"] == {"min": [1.0, 1.0, 1.0], "max": [1.0, 1.0, 3.0]}
    assert summary["label_values_seen"] == [0, 1, 2]
    assert summary["mapped_values_missing"] == [1]  # value 1 is only in the validation case
    json.dumps(audit, allow_nan=False)


def test_float_labels_with_integer_values_are_counted(tmp_path):
    add_case(tmp_path, "f", cube_label().astype(np.float32))
    assert audit_dataset([entry("f", 1)], tmp_path, [1])["samples"][0]["label_values"] == [0, 1]


def test_fractional_label_values_are_refused(tmp_path):
    add_case(tmp_path, "f", cube_label().astype(np.float32) * 0.5)
    with pytest.raises(DataContractError, match="non-integer label values: \\[0.5\\]"):
        audit_dataset([entry("f", 1)], tmp_path, [1])


def test_nan_and_inf_voxels_are_counted_per_image(tmp_path):
    image = ct_image().astype(np.float32)
    image[1, 1, :4] = [np.nan, np.nan, np.inf, -np.inf]
    save(tmp_path / "imagesTr" / "f.nii.gz", image)
    save(tmp_path / "labelsTr" / "f.nii.gz", cube_label())
    add_case(tmp_path, "ok")
    rows = audit_dataset([entry("f", 1), entry("ok", 0)], tmp_path, [1])["samples"]
    assert [r["nonfinite_voxels"] for r in rows] == [4, 0]


def test_an_image_with_nan_voxels_is_refused_naming_file_and_count(tmp_path):
    image = ct_image().astype(np.float32)
    image[1, 1, 1] = np.nan
    save(tmp_path / "imagesTr" / "f.nii.gz", image)
    save(tmp_path / "labelsTr" / "f.nii.gz", cube_label())
    with pytest.raises(DataContractError, match=r"imagesTr/f.nii.gz holds 1 NaN or Inf voxels \(of 512\)"):
        check_finite_images(audit_dataset([entry("f", 1)], tmp_path, [1]))


def test_the_overview_puts_the_peer_summary_first(tmp_path):
    add_case(tmp_path, "a")
    add_case(tmp_path, "b", affine=np.diag([-1.0, -1.0, 1.0, 1.0]))
    audit = overview(audit_dataset([entry("a", 0), entry("b", 1)], tmp_path, [1]), [[1, 3]], {3: "spleen"}, 1)
    assert list(audit)[:8] == ["n_pairs", "shape_consistent", "orientation_consistent", "orientation_codes_seen",
                               "image_looks_like_ct", "image_hu_range_seen", "fg_volumes_ml_seen", "fg_components_seen"]
    assert (audit["shape_consistent"], audit["orientation_consistent"]) == (True, False)
    assert audit["orientation_codes_seen"] == ["LPS", "RAS"] and audit["image_hu_range_seen"] == [-1000.0, 1200.0]
    assert audit["fg_volumes_ml_seen"] == [0.008, 0.008] and audit["fg_components_seen"] == [1, 1]
    assert audit["anatomy"] == "spleen"
    assert audit["fg_volumes_ml_range_by_label"] == {"1": [0.008, 0.008]}
    assert audit["fg_components_range_by_label"] == {"1": [1, 1]}
    assert "samples" in audit and "summary" in audit
    json.dumps(audit, allow_nan=False)


def test_the_overview_records_whether_the_user_label_idx_occurs(dataset):
    audit = audit_dataset([entry("case_0", 0), entry("case_1", 1)], dataset, [1])
    assert overview(audit, [[1, 3]], {3: "spleen"}, 1)["user_label_idx_present_in_sample"] is True
    assert overview(audit, [[1, 3]], {3: "spleen"}, 2)["user_label_idx_present_in_sample"] is False


def test_mapped_value_missing_from_training_is_refused(dataset):
    audit = audit_dataset([entry("case_0", 0), entry("case_1", 1)], dataset, [2])
    with pytest.raises(DataContractError, match="mapped local value 2 appears in no training label") as caught:
        check_mapped_values_present(audit, [2])
    assert "label values seen: [0, 1]" in str(caught.value)
    assert "--label-mapping" in str(caught.value)


def test_mapped_value_present_in_training_passes(dataset):
    audit = audit_dataset([entry("case_0", 0), entry("case_1", 1)], dataset, [1])
    assert 1 in audit["summary"]["label_values_seen_in_training"]
    assert check_mapped_values_present(audit, [1]) is None  # passes: no refusal


# --- prepare -------------------------------------------------------------------------------

def test_without_a_datalist_a_five_fold_one_is_written_to_out(dataset, tmp_path):
    out = tmp_path / "run"
    entries, path, source = prepare_datalist(dataset, None, out)
    assert source == GENERATED_SOURCE == "generated: seed-0 five-fold"
    assert path == (out / "datalist.json").resolve()
    assert json.loads(path.read_text()) == {"training": entries}
    assert not (dataset / "datalist.json").exists()


def test_a_given_datalist_is_used_as_is(dataset, tmp_path):
    given = write_datalist(tmp_path / "dl.json", [entry("case_0", 0), entry("case_2", 3)])
    before = given.read_bytes()
    entries, path, source = prepare_datalist(dataset, given, tmp_path / "run")
    assert (path, source) == (given.resolve(), f"given: {given}")
    assert [e["fold"] for e in entries] == [0, 3]
    assert given.read_bytes() == before and not (tmp_path / "run" / "datalist.json").exists()


def test_the_datasets_own_datalist_is_used_when_none_is_given(dataset, tmp_path):
    own = write_datalist(dataset / "datalist.json", [entry("case_1", 0), entry("case_0", 2)])
    entries, path, source = prepare_datalist(dataset, None, tmp_path / "run")
    assert (path, source) == (own.resolve(), f"found: {own}")
    assert [e["fold"] for e in entries] == [0, 2] and not (tmp_path / "run" / "datalist.json").exists()


def test_output_dir_inside_the_dataset_is_refused(dataset):
    with pytest.raises(ArgumentError, match="is inside the dataset dir"):
        prepare_datalist(dataset, None, dataset / "runs" / "x")


def many_valued_label(count: int) -> np.ndarray:
    """A label map holding `count` distinct values (0..count-1), the cube's value 1 among them."""
    label = np.zeros(SHAPE, dtype=np.int16).ravel()
    label[:count] = np.arange(count)
    return label.reshape(SHAPE)


def test_a_label_with_as_many_values_as_a_label_map_may_hold_passes(tmp_path):
    add_case(tmp_path, "many", label=many_valued_label(MAX_LABEL_VALUES))
    audit = audit_dataset([entry("many", 1)], tmp_path, [1])
    assert len(audit["samples"][0]["label_values"]) == MAX_LABEL_VALUES
    assert check_labels_look_like_labels(audit) is None  # passes: no refusal


def test_a_label_with_one_value_more_is_refused_as_an_image_with_the_evidence(tmp_path):
    add_case(tmp_path, "many", label=many_valued_label(MAX_LABEL_VALUES + 1) - 100)
    with pytest.raises(DataContractError, match="look like images, not labels") as caught:
        check_labels_look_like_labels(audit_dataset([entry("many", 1)], tmp_path, [1]))
    assert f"labelsTr/many.nii.gz holds {MAX_LABEL_VALUES + 1} distinct values from -100 to 156" in str(caught.value)


def test_a_mapped_value_in_every_validation_label_passes(dataset):
    audit = audit_dataset([entry("case_0", 0), entry("case_1", 1)], dataset, [1])
    check_mapped_values_validated(audit, [1])
    assert audit["summary"]["mapped_values_missing_in_validation"] == []


def test_a_mapped_value_absent_from_fold_0_is_refused_naming_the_fold_and_the_fix(tmp_path):
    add_case(tmp_path, "val", label=cube_label(2))
    add_case(tmp_path, "train", label=cube_label(1))
    audit = audit_dataset([entry("val", 0), entry("train", 1)], tmp_path, [1, 2])
    assert audit["summary"]["mapped_values_missing_in_validation"] == [1]
    with pytest.raises(DataContractError) as caught:
        check_mapped_values_validated(audit, [1, 2])
    text = str(caught.value)
    assert "mapped local value 1 occurs in training labels but in no validation label: fold 0 (1 case: val)" in text
    assert "Move a case whose label holds that value into fold 0" in text
