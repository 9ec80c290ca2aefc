"""prepare.py checks the user's own inputs before it looks for NVIDIA's bundle: with no bundle in the cache and
no network, a broken dataset or mapping is what the run reports, so nobody downloads the bundle to learn that
their labels are wrong. The hub cache is an empty folder here, and HF_HUB_OFFLINE=1 (tests/conftest.py)."""
from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from nvseg_bench.cli import main
from nvseg_bench.model.weights import HUB_REPO

from ..helpers import FIXTURE

MICRO = FIXTURE.parent / "micro_model"
MICRO_ARGS = ["--pretrained-ckpt", str(MICRO / "model.pt"), "--network-config", str(MICRO / "network.json")]


@pytest.fixture()
def no_hub_bundle(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture()
def user_data(tmp_path) -> Path:
    """The shipped fixture without its card, so it is a user dataset (NVIDIA's bundle, not the stand-in)."""
    data = shutil.copytree(FIXTURE, tmp_path / "data")
    (data / "fixture.json").unlink()
    return data


def run(data: Path, out: Path, *extra: str) -> int:
    return main([str(data), "--target-anatomy", "spleen", *MICRO_ARGS, *extra, "--output-dir", str(out)])


def test_a_missing_label_file_is_reported_before_the_missing_bundle(user_data, tmp_path, no_hub_bundle, capsys):
    (user_data / "labelsTr" / "spleen_02.nii.gz").unlink()
    assert run(user_data, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "spleen_02" in err and HUB_REPO not in err and "fetch-bundle" not in err


def test_labels_without_the_mapped_value_are_reported_before_the_missing_bundle(user_data, tmp_path, no_hub_bundle,
                                                                               capsys):
    for path in (user_data / "labelsTr").glob("*.nii.gz"):
        image = nib.load(path)
        data = np.asarray(image.dataobj)
        nib.save(nib.Nifti1Image(np.where(data > 0, 5, 0).astype(np.uint8), image.affine), path)
    assert run(user_data, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and HUB_REPO not in err and "fetch-bundle" not in err


def test_an_unknown_anatomy_is_reported_before_the_missing_bundle(user_data, tmp_path, no_hub_bundle, capsys):
    code = main([str(user_data), "--target-anatomy", "spleeen", *MICRO_ARGS, "--output-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "'spleeen' is not a VISTA3D class" in err and HUB_REPO not in err


def test_good_data_without_the_bundle_still_says_the_bundle_is_missing(user_data, tmp_path, no_hub_bundle, capsys):
    assert run(user_data, tmp_path / "out") == 2
    assert HUB_REPO in capsys.readouterr().err


def test_an_output_dir_inside_the_hub_cache_is_refused_before_anything_is_written(user_data, tmp_path, no_hub_bundle,
                                                                                  capsys):
    out = tmp_path / "empty-hf" / "hub" / "run"
    assert run(user_data, out) == 2
    assert "lies inside the Hugging Face cache" in capsys.readouterr().err and not out.exists()
