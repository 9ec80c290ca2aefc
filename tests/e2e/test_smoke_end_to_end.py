"""The smoke finetune end to end: the real CLI, real bundle phases, on the shipped fixture."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nvseg_bench.output.write import PEER_SCHEMA_PATH, schema_errors

from ..helpers import FIXTURE, REPO

pytestmark = pytest.mark.slow


def test_the_smoke_run_exits_0(smoke_run):
    assert smoke_run.returncode == 0, "\n".join(smoke_run.console_tail)


def test_output_json_validates_against_the_schema(smoke_run):
    assert smoke_run.doc["status"] == "passed"
    assert schema_errors(smoke_run.doc) == []


def test_output_json_validates_against_the_peer_skills_schema(smoke_run):
    assert schema_errors(smoke_run.doc, PEER_SCHEMA_PATH) == []


def test_the_peer_reads_the_best_checkpoint_as_changed(smoke_run):
    best = smoke_run.doc["output"]["checkpoint_comparisons_to_pretrained"]["best"]
    assert best["weights_identical"] is False and best["same_keys"] is True
    assert best["differing_tensors"] == best["n_changed"] > 0 and best["total_abs_diff"] > best["max_abs_diff"] > 0


def test_the_schema_holds_a_failed_result_to_carrying_an_error(smoke_run):
    failed = dict(smoke_run.doc, status="failed")
    assert any("'error' is a required property" in e for e in schema_errors(failed))
    assert schema_errors(dict(failed, error={"kind": "crash", "phase": "finetune", "message": "x"})) == []


def test_the_three_phases_ran_through_monai_bundle_run(smoke_run):
    inv = smoke_run.doc["invocation"]
    assert list(inv["commands"]) == ["eval_pretrained", "finetune", "eval_finetuned"]
    assert all(cmd[1:4] == ["-m", "monai.bundle", "run"] for cmd in inv["commands"].values())
    assert inv["phase_return_codes"] == {"eval_pretrained": 0, "finetune": 0, "eval_finetuned": 0}


def test_finetuned_tensors_differ_from_the_pretrained_ones(smoke_run):
    out = smoke_run.doc["output"]
    assert out["finetuned_ckpt_matches_pretrained_weights"] is False
    assert out["checkpoint_comparisons_to_pretrained"]["best"]["n_changed"] > 0


def test_formal_finetuned_dice_beats_formal_pretrained_dice(smoke_run):
    out = smoke_run.doc["output"]
    assert out["formal_finetuned_val_dice"] > out["formal_pretrained_val_dice"]


def test_the_finetuned_checkpoint_is_recommended(smoke_run):
    out = smoke_run.doc["output"]
    assert out["recommended_ckpt"] == out["finetuned_ckpt"] and Path(out["finetuned_ckpt"]).is_file()


def test_the_run_says_which_model_ran(smoke_run):
    doc = smoke_run.doc
    assert doc["model"].startswith("micro VISTA3D")
    assert doc["input"]["pretrained_weights"]["source"] == "fixture.json"


def test_predictions_are_written_on_the_original_grid(smoke_run):
    import nibabel

    for case in ("spleen_03", "spleen_06"):
        pred = nibabel.load(smoke_run.out / "eval_finetuned" / f"{case}_seg.nii.gz")
        image = nibabel.load(FIXTURE / "imagesTr" / f"{case}.nii.gz")
        assert pred.shape == image.shape and (abs(pred.affine - image.affine) < 1e-3).all()


def test_nothing_under_bundle_or_fixtures_was_written(smoke_run):
    assert smoke_run.inputs_unchanged


def test_every_artifact_is_in_the_manifest(smoke_run):
    manifest = json.loads((smoke_run.out / "manifest.json").read_text())
    assert "checkpoints/model_finetune.pt" in manifest["files"]
    assert "eval_finetuned/metrics.csv" in manifest["files"]


def test_two_smoke_runs_at_once_both_succeed(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-m", "nvseg_bench", str(FIXTURE), "--smoke", "--epochs", "1",
                               "--skip-formal-eval", "--output-dir", str(tmp_path / f"run{i}")],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in (1, 2)]
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    for i in (1, 2):
        assert json.loads((tmp_path / f"run{i}" / "output.json").read_text())["status"] == "passed"


def test_two_gloo_processes_finetune_with_rank_0_alone_logging(tmp_path):
    env = dict(os.environ, NPROC_PER_NODE="2")
    proc = subprocess.run([sys.executable, "-m", "nvseg_bench", str(FIXTURE), "--smoke", "--epochs", "1",
                           "--skip-formal-eval", "--output-dir", str(tmp_path / "run")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    doc = json.loads((tmp_path / "run" / "output.json").read_text())
    assert doc["plan"]["nproc_per_node"] == 2 and doc["invocation"]["multi_gpu"]
    assert "torch.distributed.run" in doc["invocation"]["command_prefix_argv"]
    # 5 training cases over 2 ranks: 3 iterations each, logged by rank 0 only
    assert doc["output"]["train_iterations"] == 3
    assert doc["output"]["finetuned_ckpt_exists"] and len(doc["output"]["val_dice_per_epoch"]) == 2


def test_two_mapped_classes_beside_unmapped_ones_and_the_epoch_zero_trap(tmp_path):
    """Phantoms hold liver 1, spleen 3 and kidneys 5 and 14; only 3 and 1 are mapped. A learning rate
    far below float32 resolution moves no weight, so no epoch beats the pretrained score and
    model_finetune.pt is the pretrained state saved again, on any CPU."""
    sys.path.insert(0, str(REPO / "fixtures" / "micro_model"))
    from make_phantoms import make_phantoms

    data = make_phantoms(tmp_path / "phantoms", n_cases=5, seed=7)
    micro = REPO / "fixtures" / "micro_model"
    proc = subprocess.run([sys.executable, "-m", "nvseg_bench", str(data), "--label-mapping", "[[3, 3], [1, 1]]",
                           "--auto-seg", "--epochs", "1", "--learning-rate", "1e-12", "--patch-size", "64", "--pretrained-ckpt",
                           str(micro / "model.pt"), "--network-config", str(micro / "network.json"),
                           "--output-dir", str(tmp_path / "run")], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    doc = json.loads((tmp_path / "run" / "output.json").read_text())
    out = doc["output"]
    assert doc["input"]["label_mappings"] == {"default": [[3, 3], [1, 1]]}
    assert out["formal_pretrained_val_dice"] > 0.5  # the micro model knows both classes on its own phantoms
    assert out["training_best_epoch_index"] == 0 and out["finetuned_ckpt_matches_pretrained_weights"] is True
    assert out["recommended_ckpt"] == out["pretrained_ckpt"] and out["improved"] is False
    assert "pretrained weights" in out["decision_reason"]
