"""Bad datasets and arguments, through the real CLI: exit 2, one message, no traceback, nothing
written outside --output-dir. Each test builds its own small dataset."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import nibabel
import numpy as np
import pytest

from nvseg_bench.cli import main

from ..helpers import REPO

AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])
MICRO_NETWORK = REPO / "fixtures" / "micro_model" / "network.json"


def write_case(root: Path, name: str, shape=(12, 12, 12), affine=AFFINE, label_value: int = 1) -> None:
    rng = np.random.default_rng(len(name))
    image = rng.integers(-1000, 1000, size=shape).astype(np.int16)
    label = np.zeros(shape, np.uint8)
    label[3:7, 3:7, 3:7] = label_value
    (root / "imagesTr").mkdir(parents=True, exist_ok=True)
    (root / "labelsTr").mkdir(parents=True, exist_ok=True)
    nibabel.save(nibabel.Nifti1Image(image, affine), root / "imagesTr" / f"{name}.nii.gz")
    nibabel.save(nibabel.Nifti1Image(label, affine), root / "labelsTr" / f"{name}.nii.gz")


def good_dataset(root: Path) -> Path:
    for i in range(3):
        write_case(root, f"case_{i}")
    return root


def snapshot(root: Path, skip: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in root.rglob("*") if p.is_file() and skip not in p.parents}


def datalist(root: Path, entries: list[tuple[str, str, int]]) -> Path:
    path = root / "datalist.json"
    path.write_text(json.dumps({"training": [{"image": i, "label": l, "fold": f} for i, l, f in entries]}))
    return path


def _unmatched(d: Path) -> list[str]:
    (d / "labelsTr" / "case_2.nii.gz").unlink()
    return []


def _corrupt(d: Path) -> list[str]:
    (d / "imagesTr" / "case_1.nii.gz").write_bytes(b"not a nifti file at all")
    return []


def _shape(d: Path) -> list[str]:
    label = nibabel.Nifti1Image(np.zeros((12, 12, 10), np.uint8), AFFINE)
    nibabel.save(label, d / "labelsTr" / "case_0.nii.gz")
    return []


def _affine(d: Path) -> list[str]:
    label = nibabel.load(d / "labelsTr" / "case_0.nii.gz")
    nibabel.save(nibabel.Nifti1Image(np.asarray(label.dataobj), np.diag([3.0, 2.0, 2.0, 1.0])), d / "labelsTr" / "case_0.nii.gz")
    return []


def _escape(d: Path) -> list[str]:
    return ["--datalist", str(datalist(d, [("../x/imagesTr/a.nii.gz", "labelsTr/case_0.nii.gz", 0),
                                          ("imagesTr/case_1.nii.gz", "labelsTr/case_1.nii.gz", 1)]))]


def _no_fold0(d: Path) -> list[str]:
    return ["--datalist", str(datalist(d, [("imagesTr/case_0.nii.gz", "labelsTr/case_0.nii.gz", 1),
                                          ("imagesTr/case_1.nii.gz", "labelsTr/case_1.nii.gz", 2)]))]


def _bad_json(d: Path) -> list[str]:
    (d / "datalist.json").write_text('{"training": [')
    return ["--datalist", str(d / "datalist.json")]


def _nan_voxels(d: Path) -> list[str]:
    image = np.asarray(nibabel.load(d / "imagesTr" / "case_1.nii.gz").dataobj).astype(np.float32)
    image[0, 0, :3] = [np.nan, np.inf, -np.inf]
    nibabel.save(nibabel.Nifti1Image(image, AFFINE), d / "imagesTr" / "case_1.nii.gz")
    return []


def _fold0_also_trains(d: Path) -> list[str]:
    # the same file under two spellings, the training entry listed first
    return ["--datalist", str(datalist(d, [("imagesTr/case_0.nii.gz", "labelsTr/case_0.nii.gz", 2),
                                          ("imagesTr/case_1.nii.gz", "labelsTr/case_1.nii.gz", 1),
                                          ("./imagesTr/../imagesTr/case_0.nii.gz", "labelsTr/case_0.nii.gz", 0)]))]


def _absent_value(d: Path) -> list[str]:
    return ["--label-mapping", "[[2, 3]]"]


def _zero_slice_spacing(d: Path) -> list[str]:
    """Image and label both say 0 mm between slices (pixdim and the sform's z column), so the pair 'matches'."""
    for folder in ("imagesTr", "labelsTr"):
        path = d / folder / "case_1.nii.gz"
        old = nibabel.load(path)
        header = old.header.copy()
        header.set_qform(None, code=0)
        header.set_sform(np.diag([2.0, 2.0, 0.0, 1.0]), code=1)
        header["pixdim"][3] = 0.0
        nibabel.save(nibabel.Nifti1Image(np.asarray(old.dataobj), None, header), path)
    return []


def _image_as_label(d: Path) -> list[str]:
    """The CT image itself copied into labelsTr/: int16 HU, same grid, and value 1 occurs in it."""
    image = nibabel.load(d / "imagesTr" / "case_1.nii.gz")
    voxels = np.asarray(image.dataobj).copy()
    voxels[0, 0, 0] = 1
    nibabel.save(nibabel.Nifti1Image(voxels, image.affine), d / "labelsTr" / "case_1.nii.gz")
    return []


def _mapped_value_only_in_training(d: Path) -> list[str]:
    write_case(d, "case_0", label_value=2)  # the one validation case holds another class
    return ["--datalist", str(datalist(d, [("imagesTr/case_0.nii.gz", "labelsTr/case_0.nii.gz", 0),
                                          ("imagesTr/case_1.nii.gz", "labelsTr/case_1.nii.gz", 1),
                                          ("imagesTr/case_2.nii.gz", "labelsTr/case_2.nii.gz", 2)]))]


def _validation_case_twice(d: Path) -> list[str]:
    # two datalists joined: every case twice
    once = [("imagesTr/case_0.nii.gz", "labelsTr/case_0.nii.gz", 0), ("imagesTr/case_1.nii.gz", "labelsTr/case_1.nii.gz", 1)]
    return ["--datalist", str(datalist(d, once + once))]


CASES: dict[str, tuple[Callable[[Path], list[str]], list[str], str]] = {
    # name: (mutate dataset -> extra args, base args, phrase the message must contain)
    "unmatched image": (_unmatched, ["--target-anatomy", "spleen"], "case_2"),
    "corrupt nifti": (_corrupt, ["--target-anatomy", "spleen"], "not a readable NIfTI"),
    "shape mismatch": (_shape, ["--target-anatomy", "spleen"], "(12, 12, 10)"),
    "affine mismatch": (_affine, ["--target-anatomy", "spleen"], "affine"),
    "datalist escapes": (_escape, ["--target-anatomy", "spleen"], "../x/imagesTr/a.nii.gz"),
    "no validation fold": (_no_fold0, ["--target-anatomy", "spleen"], "No validation cases"),
    "datalist not json": (_bad_json, ["--target-anatomy", "spleen"], "datalist.json"),
    "invented class": (lambda d: [], ["--label-mapping", "[[1, 200]]"], "cannot add a new class"),
    "unknown anatomy": (lambda d: [], ["--target-anatomy", "spleeen"], "Closest: 'spleen' (id 3)"),
    "duplicate local value": (lambda d: [], ["--label-mapping", "[[1, 3], [1, 5]]"], "1"),
    "mapped value absent": (_absent_value, [], "2"),
    "user label idx absent": (lambda d: [], ["--target-anatomy", "spleen", "--user-label-idx", "2"],
                              "mapped local value 2 appears in no training label"),
    "nan voxels": (_nan_voxels, ["--target-anatomy", "spleen"],
                   "imagesTr/case_1.nii.gz holds 3 NaN or Inf voxels (of 1728)"),
    "fold 0 image also trains": (_fold0_also_trains, ["--target-anatomy", "spleen"],
                                 "case_0: fold 0 as './imagesTr/../imagesTr/case_0.nii.gz' and fold 2 as "
                                 "'imagesTr/case_0.nii.gz'"),
    "no mapping at all": (lambda d: [], [], "--target-anatomy"),
    "missing checkpoint": (lambda d: [], ["--target-anatomy", "spleen", "--pretrained-ckpt", "/nope/m.pt"], "/nope/m.pt"),
    "missing network config": (lambda d: [], ["--target-anatomy", "spleen", "--network-config", "/nope/n.json"],
                               "/nope/n.json"),
    "not a bundle": (lambda d: [], ["--target-anatomy", "spleen", "--bundle-dir", "/tmp"], "not a MONAI bundle"),
    "two presets": (lambda d: [], ["--smoke", "--sanity"], "both given"),
    "zero slice spacing": (_zero_slice_spacing, ["--target-anatomy", "spleen"],
                           "imagesTr/case_1.nii.gz has voxel spacing [2.0, 2.0, 0.0] mm"),
    "image copied into labelsTr": (_image_as_label, ["--target-anatomy", "spleen"],
                                   "look like images, not labels"),
    "mapped value only in training": (_mapped_value_only_in_training, ["--target-anatomy", "spleen"],
                                      "mapped local value 1 occurs in training labels but in no validation label: "
                                      "fold 0 (1 case: case_0) holds only label values [0, 2]"),
    "validation case listed twice": (_validation_case_twice, ["--target-anatomy", "spleen"],
                                     "case_0: 2 times, as 'imagesTr/case_0.nii.gz', 'imagesTr/case_0.nii.gz'"),
    "patch the network cannot take": (lambda d: [], ["--target-anatomy", "spleen", "--patch-size", "100"],
                                      "each patch edge must be a multiple of 16: 100 is not"),
    "odd patch for the micro network": (lambda d: [], ["--target-anatomy", "spleen", "--network-config",
                                                       str(MICRO_NETWORK), "--patch-size", "[65,64,64]"],
                                        "Nearest valid patch: [64, 64, 64]"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_exits_2_with_one_message_and_writes_nothing_outside_out(name, tmp_path, capsys):
    mutate, args, phrase = CASES[name]
    data = good_dataset(tmp_path / "data")
    extra = mutate(data)
    out = tmp_path / "out"
    before = snapshot(tmp_path, out)
    code = main([str(data), "--output-dir", str(out), *args, *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("nvseg-finetune: ") and "Traceback" not in err
    assert phrase in err
    assert snapshot(tmp_path, out) == before


def test_bad_input_is_answered_without_importing_monai(tmp_path):
    data = good_dataset(tmp_path / "data")
    code = ("import sys; from nvseg_bench.cli import main\n"
            f"rc = main([{str(data)!r}, '--output-dir', {str(tmp_path / 'o')!r}, '--target-anatomy', 'spleeen'])\n"
            "print('RC', rc, 'MONAI', 'monai' in sys.modules, 'TORCH', 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert "RC 2 MONAI False TORCH False" in out


def test_an_output_dir_that_is_an_existing_file_exits_2_and_leaves_the_file(tmp_path, capsys):
    data = good_dataset(tmp_path / "data")
    out = tmp_path / "results.txt"
    out.write_text("the user's own notes")
    before = snapshot(tmp_path, tmp_path / "none")
    code = main([str(data), "--output-dir", str(out), "--target-anatomy", "spleen"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"--output-dir {out} is an existing file, not a directory." in err and "Pass a new or existing directory" in err
    assert snapshot(tmp_path, tmp_path / "none") == before


def test_an_output_dir_below_an_existing_file_exits_2_naming_the_file(tmp_path, capsys):
    data = good_dataset(tmp_path / "data")
    (tmp_path / "notes").write_text("x")
    before = snapshot(tmp_path, tmp_path / "none")
    code = main([str(data), "--output-dir", str(tmp_path / "notes" / "run"), "--target-anatomy", "spleen"])
    assert code == 2 and f"lies under the existing file {tmp_path / 'notes'}" in capsys.readouterr().err
    assert snapshot(tmp_path, tmp_path / "none") == before


def fake_python(folder: Path, monai: str, numpy: str) -> Path:
    """An 'interpreter' that answers the version question the way an off-pin venv would."""
    path = folder / "python"
    path.write_text(f"#!/bin/sh\necho '{{\"monai\": \"{monai}\", \"numpy\": \"{numpy}\"}}'\n")
    path.chmod(0o755)
    return path


@pytest.mark.parametrize("monai, numpy, problem", [
    ("1.5.0", "1.26.4", "MONAI is 1.5.0, not 1.4.x"),
    ("1.4.0", "2.1.3", "numpy is 2.1.3, not < 2"),
])
def test_an_off_pin_phase_interpreter_exits_2_with_the_pip_line(tmp_path, capsys, monkeypatch, monai, numpy, problem):
    data = good_dataset(tmp_path / "data")
    python = fake_python(tmp_path, monai, numpy)
    monkeypatch.setenv("NVSEG_PHASE_PYTHON", str(python))
    monkeypatch.delenv("NVSEG_ALLOW_VERSION_DRIFT", raising=False)
    out = tmp_path / "out"
    before = snapshot(tmp_path, out)
    code = main([str(data), "--output-dir", str(out), "--target-anatomy", "spleen"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and problem in err
    assert f'  {python} -m pip install "monai==1.4.0" "numpy<2"' in err.splitlines()
    assert snapshot(tmp_path, out) == before and not out.exists()


def test_an_output_dir_the_system_refuses_to_create_exits_2_naming_the_folder(tmp_path, capsys):
    # /sys takes no new folders, also for root, who may write anywhere else: a real refusal on any Linux
    if not Path("/sys/kernel").is_dir():
        pytest.skip("no sysfs here")
    data = good_dataset(tmp_path / "data")
    before = snapshot(tmp_path, tmp_path / "none")
    code = main([str(data), "--output-dir", "/sys/nvseg-run", "--target-anatomy", "spleen"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and "internal error" not in err
    assert "--output-dir /sys/nvseg-run cannot be written: /sys is not writable" in err
    assert "Pass an --output-dir in a folder you can write to" in err
    assert snapshot(tmp_path, tmp_path / "none") == before and not Path("/sys/nvseg-run").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder regardless of its mode")
def test_an_output_dir_under_a_read_only_folder_exits_2_before_reading_the_data(tmp_path, capsys):
    data = good_dataset(tmp_path / "data")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    code = main([str(data), "--output-dir", str(locked / "run"), "--target-anatomy", "spleen"])
    err = capsys.readouterr().err
    assert code == 2 and f"cannot be written: {locked} is not writable (this user may not write there)" in err
    assert not (locked / "run").exists()


def _background_255(label: np.ndarray) -> np.ndarray:
    return np.where(label == 0, 255, label).astype(np.uint8)


def _negative_outside_body(label: np.ndarray) -> np.ndarray:
    out = label.astype(np.int16)
    out[0] = -1
    return out


ODD_BUT_VALID = {
    "255 as background": _background_255,
    "negative values outside the body": _negative_outside_body,
    "float 0.0 and 1.0": lambda label: label.astype(np.float32),
    "int64": lambda label: label.astype(np.int64),
}


@pytest.mark.parametrize("name", sorted(ODD_BUT_VALID))
def test_odd_but_valid_labels_pass_the_contract(name, tmp_path, capsys):
    data = good_dataset(tmp_path / "data")
    for path in (data / "labelsTr").iterdir():
        old = nibabel.load(path)
        voxels = ODD_BUT_VALID[name](np.asarray(old.dataobj))
        nibabel.save(nibabel.Nifti1Image(voxels, old.affine, dtype=voxels.dtype), path)
    code = main([str(data), "--output-dir", str(tmp_path / "out"), "--target-anatomy", "spleen", "--dry-run",
                 "--pretrained-ckpt", str(REPO / "fixtures" / "micro_model" / "model.pt"),
                 "--network-config", str(MICRO_NETWORK)])
    assert code == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "out" / "output.json").read_text())["status"] == "planned"
