"""The verifier's boundary check (eval_engine/boundary_check.py): its own NSD and HD95 against hand-worked
values, and on a copy of the stored smoke pack given the producer's output.boundary (manifest re-hashed after
every edit): the untouched claim passes, a tampered NSD or HD95 fails naming the value."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from eval_engine.boundary_check import nsd_hd95
from ..helpers import FIXTURE, materialize_pack, smoke_boundary
from .test_trust_attacks import PRETRAINED, edit_output, statuses, verify, detail

TRUSTED = ("--dataset-dir", str(FIXTURE), "--pretrained-ckpt", str(PRETRAINED))


def test_the_verifiers_own_code_gives_the_hand_worked_values():
    label = np.zeros((7, 7, 7), bool)
    label[2:5, 2:5, 2:5] = True
    centre = np.zeros_like(label)
    centre[3, 3, 3] = True
    nsd, hd95 = nsd_hd95(centre, label, np.ones(3), 1.0)  # see tests/unit/evidence/test_boundary.py
    assert nsd == pytest.approx(7 / 27) and hd95 == pytest.approx(math.sqrt(3))
    assert nsd_hd95(np.zeros_like(label), label, np.array([1.0, 2.0, 3.0]), 2.0) == (
        0.0, pytest.approx(math.sqrt(6 ** 2 + 12 ** 2 + 18 ** 2)))
    assert nsd_hd95(label, np.zeros_like(label), np.ones(3), 2.0) == (None, None)


@pytest.fixture
def pack(tmp_path) -> Path:
    """The smoke pack with the boundary block its producer computes from the pack's own predictions."""
    pack_dir = materialize_pack("smoke", tmp_path / "pack")
    block = smoke_boundary(pack_dir)
    edit_output(pack_dir, lambda d: d["output"].__setitem__("boundary", block))
    return pack_dir


def test_the_producers_boundary_claims_pass(pack, tmp_path):
    code, summary = verify(pack, tmp_path / "out", *TRUSTED)
    assert statuses(summary)["boundary.validation"] == "pass", detail(summary, "boundary.validation")
    assert code == 0 and summary["verdict"] == "passed"


def _raise_first_nsd(doc):
    side = doc["output"]["boundary"]["validation"]["finetuned"]
    case = sorted(side["per_case_per_class"])[0]
    side["per_case_per_class"][case]["spleen"]["nsd"] = min(1.0, side["per_case_per_class"][case]["spleen"]["nsd"] + 0.2)


def _shrink_hd95_mean(doc):
    doc["output"]["boundary"]["validation"]["finetuned"]["mean_hd95_mm"] /= 2


def _claim_an_nsd_gain(doc):
    doc["output"]["boundary"]["validation"]["nsd_gain_stats"]["mean_gain"] += 0.1


def _hide_a_side_behind_a_gain(doc):
    doc["output"]["boundary"]["validation"]["pretrained"] = None
    doc["output"]["boundary"]["validation"]["nsd_gain_stats"]["mean_gain"] = 0.5


@pytest.mark.parametrize("forge, said", [(_raise_first_nsd, "nsd is"), (_shrink_hd95_mean, "mean_hd95_mm is"),
                                         (_claim_an_nsd_gain, "nsd_gain_stats: mean gain"),
                                         (_hide_a_side_behind_a_gain, "claims no boundary figures")])
def test_a_tampered_boundary_claim_fails_naming_it(pack, tmp_path, forge, said):
    edit_output(pack, forge)
    code, summary = verify(pack, tmp_path / "out", *TRUSTED)
    assert statuses(summary)["boundary.validation"] == "fail" and said in detail(summary, "boundary.validation")
    assert summary["verdict"] == "failed" and code != 0
