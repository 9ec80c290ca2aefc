"""The Task06 sanity preset on a Task06-shaped synthetic directory, planned with --dry-run."""
from __future__ import annotations

import json
from pathlib import Path

import nibabel
import numpy as np
import pytest

from nvseg_bench.cli import main

from ...helpers import REPO

MICRO = REPO / "fixtures" / "micro_model"


@pytest.fixture(scope="module")
def task06(tmp_path_factory) -> Path:
    """63 small labelled cases with MSD naming and dataset.json, plus an imagesTs/ that must be ignored."""
    root = tmp_path_factory.mktemp("Task06_Lung")
    for folder in ("imagesTr", "labelsTr", "imagesTs"):
        (root / folder).mkdir()
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    rng = np.random.default_rng(6)
    training = []
    for i in range(1, 64):
        name = f"lung_{i:03d}.nii.gz"
        image = rng.integers(-1000, 600, size=(10, 10, 6)).astype(np.int16)
        label = np.zeros((10, 10, 6), np.uint8)
        label[3:6, 3:6, 2:4] = 1
        nibabel.save(nibabel.Nifti1Image(image, affine), root / "imagesTr" / name)
        nibabel.save(nibabel.Nifti1Image(label, affine), root / "labelsTr" / name)
        training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
    nibabel.save(nibabel.Nifti1Image(np.zeros((10, 10, 6), np.int16), affine), root / "imagesTs" / "lung_100.nii.gz")
    (root / "dataset.json").write_text(json.dumps({"name": "Lung", "labels": {"0": "background", "1": "cancer"},
                                                   "training": training, "test": ["./imagesTs/lung_100.nii.gz"]}))
    return root


def plan_sanity(task06: Path, out: Path, *extra: str) -> dict:
    code = main([str(task06), "--sanity", "--dry-run", "--allow-cpu", "--pretrained-ckpt", str(MICRO / "model.pt"),
                 "--network-config", str(MICRO / "network.json"), "--output-dir", str(out), *extra])
    assert code == 0
    return json.loads((out / "output.json").read_text())


def test_sanity_splits_63_cases_into_13_validation_cases(task06, tmp_path):
    doc = plan_sanity(task06, tmp_path / "out")
    inp = doc["input"]
    assert (inp["n_train_cases"], inp["n_train_fold_cases"], inp["n_val_cases"]) == (63, 50, 13)
    assert doc["input"]["dataset_audit"]["datalist_source"] == "generated: seed-0 five-fold"
    datalist = json.loads((tmp_path / "out" / "datalist.json").read_text())["training"]
    assert not any("imagesTs" in e["image"] for e in datalist)


def test_a_sanity_plan_validates_against_our_schema_and_the_peer_skills(task06, tmp_path):
    from nvseg_bench.output.write import both_schema_errors

    doc = plan_sanity(task06, tmp_path / "out")
    assert doc["input"]["sanity"] and both_schema_errors(doc) == []
    assert doc["invocation"]["override_file"] == "configs/train_continual_task06_lung.json"


def test_sanity_stages_the_reference_recipe(task06, tmp_path, monkeypatch):
    monkeypatch.setenv("NPROC_PER_NODE", "1")
    doc = plan_sanity(task06, tmp_path / "out")
    override = json.loads((tmp_path / "out" / "configs" / "train_continual_task06_lung.json").read_text())
    assert override["label_mappings"] == {"default": [[1, 23]]}
    assert (override["drop_label_prob"], override["drop_point_prob"]) == (0.0, 1.0)
    assert override["patch_size"] == [128, 128, 128] and override["resample_to_spacing"] == [1.5, 1.5, 1.5]
    assert override["learning_rate"] == 5e-5 and override["lr_schedule#activate"] is False
    assert override["epochs"] == 5 and override["train_dataset_cache_rate"] == 1.0
    assert doc["plan"]["nproc_per_node"] == 1 and not doc["plan"]["multi_gpu"]
    assert doc["invocation"]["eval_config_stack"][:3] == \
        ["configs/train.json", "configs/train_continual.json", "configs/evaluate.json"]
    assert doc["invocation"]["command_prefix_argv"][1:] == ["-m", "monai.bundle", "run"]


@pytest.mark.parametrize("extra, env, named", [
    (["--nnodes", "2"], "1", "--nnodes 2"),
    ([], "4", "NPROC_PER_NODE=4"),
])
def test_sanity_on_several_gpus_or_nodes_is_refused(task06, tmp_path, monkeypatch, capsys, extra, env, named):
    monkeypatch.setenv("NPROC_PER_NODE", env)
    code = main([str(task06), "--sanity", "--dry-run", "--allow-cpu", *extra, "--output-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "one-GPU reference run" in err and named in err
    assert not (tmp_path / "out").exists()


def test_a_task06_folder_without_a_preset_flag_runs_the_sanity_preset(task06, tmp_path):
    code = main([str(task06), "--dry-run", "--allow-cpu", "--pretrained-ckpt", str(MICRO / "model.pt"),
                 "--network-config", str(MICRO / "network.json"), "--output-dir", str(tmp_path / "out")])
    doc = json.loads((tmp_path / "out" / "output.json").read_text())
    assert code == 0 and doc["plan"]["preset"] == "sanity" and doc["input"]["sanity"]
    assert doc["plan"]["rationale"][0] == f"preset: sanity ({task06} is an MSD Task06 folder; no --smoke or --sanity was given)"


def test_sanity_without_a_dataset_takes_nvseg_task06_dir(task06, tmp_path, monkeypatch):
    monkeypatch.setenv("NVSEG_TASK06_DIR", str(task06))
    code = main(["--sanity", "--dry-run", "--allow-cpu", "--pretrained-ckpt", str(MICRO / "model.pt"),
                 "--network-config", str(MICRO / "network.json"), "--output-dir", str(tmp_path / "out")])
    doc = json.loads((tmp_path / "out" / "output.json").read_text())
    assert code == 0 and doc["input"]["dataset_dir"] == str(task06.resolve())


def test_sanity_without_a_dataset_or_nvseg_task06_dir_names_the_variable(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("NVSEG_TASK06_DIR", raising=False)
    code = main(["--sanity", "--allow-cpu", "--output-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "$NVSEG_TASK06_DIR is not set" in err and not (tmp_path / "out").exists()


def test_sanity_without_a_gpu_is_refused_unless_allowed(task06, tmp_path, capsys):
    code = main([str(task06), "--sanity", "--dry-run", "--output-dir", str(tmp_path / "out")])
    assert code == 2 and "--allow-cpu" in capsys.readouterr().err


def test_multi_node_flags_reach_torchrun(tmp_path):
    fixture = REPO / "fixtures" / "spleen_micro"
    code = main([str(fixture), "--smoke", "--dry-run", "--nnodes", "2", "--node-rank", "1",
                 "--rdzv-endpoint", "node0:29400", "--output-dir", str(tmp_path / "out")])
    doc = json.loads((tmp_path / "out" / "output.json").read_text())
    prefix = doc["invocation"]["command_prefix_argv"]
    assert code == 0 and prefix[1:3] == ["-m", "torch.distributed.run"]
    assert {"--nnodes=2", "--node_rank=1", "--rdzv_endpoint=node0:29400"} <= set(prefix)
    assert doc["plan"]["multi_gpu"] and "configs/multi_gpu_train.json" in doc["invocation"]["config_stack"]


def test_task06_checks_pass_the_reference_run_and_name_what_misses():
    from nvseg_bench.evidence.ranges import task06_checks

    reference = {"formal_pretrained_val_dice": 0.6697, "formal_finetuned_val_dice": 0.6836,
                 "formal_improvement_over_pretrained": 0.0139, "training_start_val_dice": 0.6763,
                 "training_best_val_dice": 0.6905, "finetuned_ckpt_matches_pretrained_weights": False}
    assert task06_checks(reference, 0)["passed"]
    worse = task06_checks(dict(reference, training_best_val_dice=0.6790), 3)
    assert worse["failed_checks"] == ["training_best_val_dice", "training_improvement", "return_code"]
