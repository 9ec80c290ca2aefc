"""Checks on the synthetic CT fixtures: the committed spleen_micro and the pretraining phantoms."""
from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from ..helpers import REPO

FIXTURES = REPO / "fixtures"
sys.path.insert(0, str(FIXTURES))
sys.path.insert(0, str(FIXTURES / "micro_model"))

import make_phantoms  # noqa: E402
import make_spleen_micro  # noqa: E402

SPLEEN_MICRO = FIXTURES / "spleen_micro"


def _pairs(root: Path) -> list[tuple[nib.Nifti1Image, nib.Nifti1Image]]:
    datalist = json.loads((root / "datalist.json").read_text())
    return [(nib.load(root / e["image"]), nib.load(root / e["label"])) for e in datalist["training"]]


def _files(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}


def test_regenerating_gives_identical_files(tmp_path: Path) -> None:
    make_spleen_micro.generate(tmp_path)
    committed, fresh = _files(SPLEEN_MICRO), _files(tmp_path)
    assert sorted(fresh) == sorted(committed)
    for name, path in committed.items():
        old, new = path.read_bytes(), fresh[name].read_bytes()
        if name.endswith(".gz"):
            # compare the NIfTI payload and the gzip header (no mtime, no file name); the deflate
            # stream itself may legitimately differ under another zlib build (e.g. zlib-ng)
            assert new[:10] == old[:10], f"{name}: gzip header differs"
            assert gzip.decompress(new) == gzip.decompress(old), f"{name}: rerun the generator and commit"
        else:
            assert new == old, f"{name}: rerun the generator and commit"


def test_gzip_header_has_no_timestamp_or_name() -> None:
    head = (SPLEEN_MICRO / "imagesTr" / "spleen_01.nii.gz").read_bytes()[:10]
    assert head[:3] == b"\x1f\x8b\x08"
    assert head[3] == 0  # no FNAME / FCOMMENT / FEXTRA flags
    assert head[4:8] == b"\x00\x00\x00\x00"


def test_each_pair_shares_shape_and_affine() -> None:
    pairs = _pairs(SPLEEN_MICRO)
    assert len(pairs) == 7
    for image, label in pairs:
        assert image.shape == label.shape
        assert np.array_equal(image.affine, label.affine)
        assert image.get_data_dtype() == np.int16
        assert label.get_data_dtype() == np.uint8


def test_datalist_has_two_validation_cases() -> None:
    entries = json.loads((SPLEEN_MICRO / "datalist.json").read_text())["training"]
    folds = [e["fold"] for e in entries]
    assert folds.count(0) == 2
    assert set(folds) - {0} <= {1, 2, 3, 4}
    for e in entries:
        assert (SPLEEN_MICRO / e["image"]).is_file() and (SPLEEN_MICRO / e["label"]).is_file()


def test_spacing_is_never_bundle_spacing_and_varies() -> None:
    spacings = []
    for image, _ in _pairs(SPLEEN_MICRO):
        zooms = tuple(round(float(z), 3) for z in image.header.get_zooms())
        assert not np.isclose(zooms, 1.5).any()
        slice_axis = [c in "SI" for c in nib.aff2axcodes(image.affine)].index(True)
        in_plane = [z for i, z in enumerate(zooms) if i != slice_axis]
        assert all(2.0 <= z <= 3.0 for z in in_plane)
        assert 2.5 <= zooms[slice_axis] <= 4.0
        spacings.append(zooms)
    assert len(set(spacings)) == len(spacings)


def test_orientations_include_non_ras() -> None:
    codes = ["".join(nib.aff2axcodes(image.affine)) for image, _ in _pairs(SPLEEN_MICRO)]
    assert sum(c != "RAS" for c in codes) >= 2
    # one case must have permuted axes or a flipped slice axis, beyond a plain LPS flip
    assert any(c[2] != "S" for c in codes)


def test_spleen_is_on_patient_left_in_world_space() -> None:
    for image, label in _pairs(SPLEEN_MICRO):
        mask = np.asarray(label.dataobj) > 0
        centroid = nib.affines.apply_affine(label.affine, np.argwhere(mask).mean(axis=0))
        middle = nib.affines.apply_affine(label.affine, (np.asarray(label.shape) - 1) / 2.0)
        assert centroid[0] < middle[0] - 15.0  # RAS world: patient left is -x


def test_labels_are_binary_and_spleen_is_sizeable() -> None:
    for image, label in _pairs(SPLEEN_MICRO):
        values = np.asarray(label.dataobj)
        assert set(np.unique(values).tolist()) == {0, 1}
        body = np.asarray(image.dataobj) > -500
        assert 0.03 <= values.sum() / body.sum() <= 0.07


def test_fixture_is_small() -> None:
    assert sum(p.stat().st_size for p in _files(SPLEEN_MICRO).values()) < 5 * 1024 * 1024


def test_phantoms_have_vista_classes_and_are_deterministic(tmp_path: Path) -> None:
    first = make_phantoms.make_phantoms(tmp_path / "a", n_cases=3, seed=7)
    second = make_phantoms.make_phantoms(tmp_path / "b", n_cases=3, seed=7)
    assert first == tmp_path / "a"
    a_files, b_files = _files(first), _files(second)
    assert sorted(a_files) == sorted(b_files)
    assert all(a_files[n].read_bytes() == b_files[n].read_bytes() for n in a_files)
    other_seed = make_phantoms.make_phantoms(tmp_path / "c", n_cases=3, seed=8)
    name = "imagesTr/phantom_01.nii.gz"
    assert (other_seed / name).read_bytes() != a_files[name].read_bytes()
    folds = [e["fold"] for e in json.loads((first / "datalist.json").read_text())["training"]]
    assert folds == [1, 0, 0]
    classes: set[int] = set()
    for image, label in _pairs(first):
        assert "".join(nib.aff2axcodes(image.affine)) == "RAS"
        assert np.allclose(image.header.get_zooms(), 2.0)
        assert np.array_equal(image.affine, label.affine)
        classes |= set(np.unique(np.asarray(label.dataobj)).tolist())
    assert classes == {0, 1, 3, 5, 14}


def test_phantoms_need_a_training_case(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_cases"):
        make_phantoms.make_phantoms(tmp_path, n_cases=2)


@pytest.mark.slow  # renders five volumes: several seconds
def test_the_mr_fixture_regenerates_identically_and_holds_mr_like_intensities(tmp_path: Path) -> None:
    import make_mr_micro

    assert make_mr_micro.main(["--out", str(tmp_path)]) == 0
    committed, fresh = _files(FIXTURES / "mr_micro"), _files(tmp_path)
    assert sorted(fresh) == sorted(committed)
    for name, path in committed.items():
        read = gzip.decompress if name.endswith(".gz") else (lambda data: data)
        assert read(fresh[name].read_bytes()) == read(path.read_bytes()), f"{name}: rerun make_mr_micro.py and commit"
    for image, label in _pairs(FIXTURES / "mr_micro"):
        data = np.asarray(image.dataobj)
        assert data.min() >= 0 and 1000 < data.max() < 4096  # no Hounsfield scale, no air at -1000
        assert set(np.unique(np.asarray(label.dataobj))) == {0, 1}
