"""The grid factor a patch must fit, read from the network config as data, and the refusal that names it."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nvseg_bench.errors import ArgumentError
from nvseg_bench.planning.network import check_patch, grid_factor, nearest_valid, network_factor

from ...helpers import REPO

MICRO = REPO / "fixtures" / "micro_model" / "network.json"


def encoder(**fields: object) -> dict:
    return {"image_encoder": {"_target_": "monai.networks.nets.segresnet_ds.SegResNetDS2", **fields}}


def test_the_bundles_vista3d132_needs_multiples_of_16():
    found = network_factor(REPO / "bundle", None)
    assert found is not None and found.factor == 16 and "vista3d132" in found.described


def test_the_micro_network_config_wins_over_the_bundle_and_needs_multiples_of_2():
    found = network_factor(REPO / "bundle", MICRO)
    assert found is not None and found.factor == 2 and str(MICRO) in found.described


@pytest.mark.parametrize("fields, factor", [
    ({"blocks_down": [1, 1]}, 2),
    ({"blocks_down": [1, 2, 2, 4, 4, 4]}, 32),
    ({}, 8),  # SegResNetDS2's own default: four levels
])
def test_the_factor_follows_the_encoders_levels(fields, factor):
    found = grid_factor(encoder(**fields), {}, "net.json")
    assert found is not None and found.factor == factor


def test_a_referenced_blocks_down_is_read_from_the_same_file():
    found = grid_factor(encoder(blocks_down="@levels"), {"levels": [1, 2, 2]}, "net.json")
    assert found is not None and found.factor == 4


@pytest.mark.parametrize("network_def", [
    "$monai.networks.nets.SwinUNETR(img_size=96)",
    {"image_encoder": {"_target_": "SomeOtherEncoder", "blocks_down": [1, 1]}},
    encoder(blocks_down=[1, 1], resolution=[1.0, 1.0, 5.0]),  # anisotropic: factors per axis, not read here
])
def test_a_network_this_tool_cannot_read_is_not_checked(network_def):
    assert grid_factor(network_def, {}, "net.json") is None


def test_a_missing_network_config_is_left_to_its_own_message(tmp_path):
    assert network_factor(REPO / "bundle", tmp_path / "absent.json") is None


@pytest.mark.parametrize("patch, factor, valid", [
    ([100, 100, 100], 16, [96, 96, 96]),
    ([65, 64, 63], 2, [64, 64, 62]),  # ties go down: less memory
    ([124, 70, 8], 16, [128, 64, 16]),  # at least one factor
])
def test_the_nearest_valid_patch(patch, factor, valid):
    assert nearest_valid(patch, factor) == valid


def test_a_patch_that_fits_passes():
    found = network_factor(REPO / "bundle", None)
    assert found is not None and found.factor == 16  # checked against the factor, not passed unchecked
    assert check_patch([96, 96, 64], found, "--patch-size") is None  # passes: no refusal


def test_a_patch_that_does_not_fit_names_the_factor_the_edges_and_the_nearest_patch():
    with pytest.raises(ArgumentError) as caught:
        check_patch([100, 96, 90], network_factor(REPO / "bundle", None), "--patch-size")
    text = str(caught.value)
    assert "patch_size [100, 96, 90] (--patch-size) does not fit the network" in text
    assert "multiple of 16: 90 and 100 are not" in text
    assert "Nearest valid patch: [96, 96, 96]. Pass --patch-size '[96,96,96]'" in text


def test_the_plan_says_the_patch_was_checked(tmp_path):
    out = tmp_path / "out"
    code = subprocess.run([sys.executable, "-m", "nvseg_bench", str(REPO / "fixtures" / "spleen_micro"), "--smoke",
                           "--dry-run", "--patch-size", "[64,64,32]", "--output-dir", str(out)],
                          capture_output=True, text=True, cwd=REPO)
    assert code.returncode == 0, code.stderr
    rationale = json.loads((out / "output.json").read_text())["plan"]["rationale"]
    assert "patch_size: fits the network (edges a multiple of 2)" in rationale
