"""The staged inference phase: the checkpoint where each bundle's inference config reads it, one stack."""
from __future__ import annotations

import json
from pathlib import Path

from nvseg_bench.stage.inference import Inference, checkpoint_key, stage_inference

from ...helpers import REPO


def test_the_checkpoint_key_is_read_from_each_bundles_inference_config(tmp_path):
    """NVIDIA's inference.json loads the checkpoint through `checkpointloader`, this project's through
    `ckpt_path`; the override must name the one the config has, or the bundle's own models/model.pt is used."""
    ours, upstream = tmp_path / "ours.json", tmp_path / "upstream.json"
    ours.write_text(json.dumps({"ckpt_path": "x", "handlers": []}))
    upstream.write_text(json.dumps({"checkpointloader": {"load_path": "$@bundle_root + '/models/model.pt'"}}))
    assert checkpoint_key(ours) == "ckpt_path" and checkpoint_key(upstream) == "checkpointloader#load_path"
    assert checkpoint_key(REPO / "bundle" / "configs" / "inference.json") == "ckpt_path"


def test_every_image_is_prompted_with_the_classes_and_its_label_map_is_named_by_its_stem(tmp_path):
    run = Inference(REPO / "bundle", Path("/m/model.pt"), (Path("/d/a.nii.gz"), Path("/d/b.nii")), (3, 133),
                    tmp_path / "raw", [64, 64, 64], 0.25, False)
    stack = stage_inference(run, tmp_path / "configs" / "x.json", None)
    written = json.loads((tmp_path / "configs" / "x.json").read_text())
    assert stack == [str(REPO / "bundle" / "configs" / "inference.json"), str(tmp_path / "configs" / "x.json")]
    assert written["dataset#data"] == [{"image": "/d/a.nii.gz", "label_prompt": [3, 133]},
                                       {"image": "/d/b.nii", "label_prompt": [3, 133]}]
    assert written["ckpt_path"] == "/m/model.pt" and written["inferer#overlap"] == 0.25
    assert run.label_map(Path("/d/b.nii")) == tmp_path / "raw" / "b_seg.nii.gz"


def test_a_network_config_goes_between_the_bundle_config_and_the_override(tmp_path):
    run = Inference(REPO / "bundle", Path("/m.pt"), (Path("/d/a.nii.gz"),), (3,), tmp_path, [64] * 3, 0.5, True)
    stack = stage_inference(run, tmp_path / "o.json", tmp_path / "network.json")
    assert stack[1:] == [str(tmp_path / "network.json"), str(tmp_path / "o.json")]
