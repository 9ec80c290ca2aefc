"""integrity.paths on a run that kept the pretrained weights: the recommendation then names a file
outside the pack, which is allowed when (and only when) it is the run's pretrained checkpoint.

Found on an H100: a sanity run with random weights recommended its pretrained checkpoint, and the
verifier failed the pack for it."""
from __future__ import annotations

from pathlib import Path

from eval_engine.integrity import check_escaping_paths
from eval_engine.pack import Pack


def _pack(tmp_path: Path, recommended: str) -> Pack:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    output = {"invocation": {"cwd": str(run)},
              "output": {"pretrained_ckpt": "/models/vista3d.pt", "recommended_ckpt": recommended,
                         "finetuned_ckpt": str(run / "checkpoints" / "model_finetune.pt")}}
    return Pack(root=run, output=output, manifest=None)


def test_recommending_the_pretrained_checkpoint_outside_the_pack_passes(tmp_path):
    assert check_escaping_paths(_pack(tmp_path, "/models/vista3d.pt")).status == "pass"


def test_recommending_a_finetuned_checkpoint_inside_the_pack_passes(tmp_path):
    assert check_escaping_paths(_pack(tmp_path, str(tmp_path / "run" / "checkpoints" / "model_finetune.pt"))).status == "pass"


def test_recommending_any_other_file_outside_the_pack_fails_and_names_it(tmp_path):
    finding = check_escaping_paths(_pack(tmp_path, "/elsewhere/model.pt"))
    assert finding.status == "fail" and "/output/recommended_ckpt: /elsewhere/model.pt" in finding.detail
