"""The trusted verifier re-derives the anatomy plausibility verdicts a run recorded (eval_engine.plausibility)."""
from __future__ import annotations

from pathlib import Path

import pytest

from nvseg_bench.cli import main

from ..helpers import FIXTURE


@pytest.fixture(scope="module")
def planned_pack(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pack") / "out"
    assert main([str(FIXTURE), "--dry-run", "--output-dir", str(out)]) == 0
    return out


def verify_anatomy(pack_dir: Path, change=None):
    from eval_engine.pack import load_pack
    from eval_engine.plausibility import check_anatomy

    pack = load_pack(pack_dir)
    if change:
        change(pack.output["input"]["dataset_audit"])
    return check_anatomy(pack)


def test_the_verifier_agrees_with_the_recorded_anatomy_verdicts(planned_pack):
    found = verify_anatomy(planned_pack)
    assert found.status == "pass", found.detail
    assert found.numbers["rederived"]["outside"] == {"1": {"volume": [], "components": ["spleen_05"]}}


def test_the_verifier_catches_a_verdict_that_hides_a_split_label(planned_pack):
    found = verify_anatomy(planned_pack, lambda a: a.update(anatomy_components_all_match=True))
    assert found.status == "fail" and "anatomy_components_all_match is True, the table gives False" in found.detail


def test_the_verifier_catches_a_volume_edited_out_of_range(planned_pack):
    found = verify_anatomy(planned_pack, lambda a: a["samples"][0]["foreground_ml"].update({"1": 0.05}))
    assert found.status == "fail" and "anatomy_volume_all_in_range is True, the table gives False" in found.detail
