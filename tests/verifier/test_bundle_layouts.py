"""The verifier on a pack NVIDIA's bundle wrote: its evaluate.json saves each prediction as
SaveImaged's default NAME/NAME_trans.nii.gz, and its recipe is not the one the smoke ranges measured."""
from __future__ import annotations

import json
from pathlib import Path

from eval_engine.run_trusted import audit

from ..helpers import materialize_pack


def upstream_layout(pack: Path) -> None:
    for phase in ("eval_pretrained", "eval_finetuned"):
        for pred in sorted((pack / phase).glob("*_seg.nii.gz")):
            stem = pred.name.removesuffix("_seg.nii.gz")
            (pack / phase / stem).mkdir()
            pred.rename(pack / phase / stem / f"{stem}_trans.nii.gz")


def test_predictions_in_nvidias_layout_are_found_and_rescored(tmp_path):
    pack = materialize_pack("smoke", tmp_path / "pack")
    upstream_layout(pack)
    found = {f.name: f for f in audit(pack)[0]}
    for phase in ("eval_pretrained", "eval_finetuned"):
        assert found[f"formal_dice.{phase}"].status == "pass", found[f"formal_dice.{phase}"].detail
        assert found[f"per_class.{phase}"].status == "pass"


def test_a_smoke_run_on_another_bundle_is_not_held_to_the_smoke_ranges(tmp_path):
    pack = materialize_pack("smoke", tmp_path / "pack")
    doc = json.loads((pack / "output.json").read_text())
    doc["input"]["bundle"]["source"] = "dir"
    (pack / "output.json").write_text(json.dumps(doc))
    assert {f.name: f for f in audit(pack)[0]}["reference_ranges"].status == "skipped"
