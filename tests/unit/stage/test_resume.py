"""--resume: a stopped finetune continues from its last completed epoch, with every epoch once in the trace.

Real runs stopped by SIGTERM and resumed are in tests/e2e/test_resume_runs.py."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import nibabel
import numpy as np
import pytest
import torch

from nvseg_bench.stage import resume
from nvseg_bench.cli import main
from nvseg_bench.phases.logparse import merge_resumed, parse_lines

from ...helpers import FIXTURE, REPO

sys.path.insert(0, str(REPO / "fixtures"))
import make_upstream_bundle  # noqa: E402


def stack_of(bundle: Path) -> list[str]:
    return [str(bundle / "configs" / "train.json"), str(bundle / "configs" / "train_continual.json")]


def test_the_saver_keeps_every_state_an_epoch_needs_and_runs_before_the_bundles_own_run_list(tmp_path):
    values = resume.override(stack_of(REPO / "bundle"), tmp_path, None, amp=False)
    saver = values["nvseg_resume_saver"]
    assert saver["_target_"] == "CheckpointSaver" and saver["save_dir"] == str(tmp_path / "checkpoints" / "resume")
    assert saver["save_dict"] == {"trainer": "@train#trainer", "model": "@network", "optimizer": "@optimizer",
                                  "rng": "@nvseg_resume_rng",
                                  "best": "$@validate#handlers#2._key_metric_checkpoint"}
    assert list(saver["save_dict"])[0] == "trainer"  # built first, as the bundle builds it: same transform seeds
    bundle_run = json.loads((REPO / "bundle" / "configs" / "train.json").read_text())["run"]
    assert values["run"] == [*bundle_run[:-1], "$@nvseg_resume_saver.attach(@train#trainer)", bundle_run[-1]]
    assert "nvseg_resume_loader" not in values and "val_at_start" not in values


def test_resuming_adds_the_loader_skips_the_start_validation_and_keeps_the_loss_scale_under_amp(tmp_path):
    point = resume.ResumePoint(2, tmp_path / "resume_checkpoint_epoch=2.pt")
    values = resume.override(stack_of(REPO / "bundle"), tmp_path, point, amp=True)
    loader = values["nvseg_resume_loader"]
    assert loader["load_path"] == str(point.checkpoint) and loader["load_dict"] == values["nvseg_resume_saver"]["save_dict"]
    assert values["val_at_start"] is False and values["run"][-3:-1] == ["$@nvseg_resume_saver.attach(@train#trainer)",
                                                                         "$@nvseg_resume_loader.attach(@train#trainer)"]
    assert loader["load_dict"]["scaler"] == "$@train#trainer.scaler"


def test_the_best_score_saver_is_found_where_an_upstream_layout_keeps_it(tmp_path):
    bundle = make_upstream_bundle.build(tmp_path / "b")
    train = json.loads((bundle / "configs" / "train.json").read_text())
    handlers = train["validate"]["handlers"]
    train["validate"]["handlers"] = [{"_target_": "EarlyStopHandler"}, *handlers]  # upstream puts one first
    (bundle / "configs" / "train.json").write_text(json.dumps(train))
    values = resume.override(stack_of(bundle), tmp_path, None, amp=False)
    assert values["nvseg_resume_saver"]["save_dict"]["best"] == "$@validate#handlers#3._key_metric_checkpoint"


def test_the_last_point_is_the_newest_epoch_checkpoint(tmp_path):
    assert resume.last_point(tmp_path) == resume.ResumePoint(0, None)
    folder = tmp_path / "checkpoints" / "resume"
    folder.mkdir(parents=True)
    for epoch in (1, 3, 2):
        torch.save({"epoch": epoch}, folder / f"resume_checkpoint_epoch={epoch}.pt")
    assert resume.last_point(tmp_path) == resume.ResumePoint(3, folder / "resume_checkpoint_epoch=3.pt")


def test_a_checkpoint_the_stop_cut_short_is_passed_over_for_the_epoch_before(tmp_path):
    folder = tmp_path / "checkpoints" / "resume"
    folder.mkdir(parents=True)
    torch.save({"epoch": 1}, folder / "resume_checkpoint_epoch=1.pt")
    whole = (folder / "resume_checkpoint_epoch=1.pt").read_bytes()
    (folder / "resume_checkpoint_epoch=2.pt").write_bytes(whole[: len(whole) // 2])  # SIGTERM mid-write
    point = resume.last_point(tmp_path)
    assert (point.epoch, point.checkpoint) == (1, folder / "resume_checkpoint_epoch=1.pt")
    assert point.incomplete == (folder / "resume_checkpoint_epoch=2.pt",)
    (folder / "resume_checkpoint_epoch=1.pt").write_bytes(b"")  # MONAI had already removed the older one
    assert resume.last_point(tmp_path).epoch == 0


def log(*lines: str) -> list[str]:
    return [f"2026-12-05 10:00:00,000 - INFO - {line}" for line in lines]


def test_the_newest_log_wins_for_each_epoch_so_every_epoch_appears_once():
    stopped = parse_lines(log("Epoch[0] Metrics -- val_mean_dice: 0.20", "Epoch: 1/3, Iter: 1/2 -- train_loss: 0.9",
                              "Epoch: 1/3, Iter: 2/2 -- train_loss: 0.8", "Epoch[1] Metrics -- val_mean_dice: 0.30",
                              "Epoch: 2/3, Iter: 1/2 -- train_loss: 0.7"))  # stopped inside epoch 2
    resumed = parse_lines(log("Epoch: 2/3, Iter: 1/2 -- train_loss: 0.75", "Epoch: 2/3, Iter: 2/2 -- train_loss: 0.6",
                              "Epoch[2] Metrics -- val_mean_dice: 0.40", "Epoch: 3/3, Iter: 1/2 -- train_loss: 0.5",
                              "Epoch: 3/3, Iter: 2/2 -- train_loss: 0.4", "Epoch[3] Metrics -- val_mean_dice: 0.45"))
    merged = merge_resumed([stopped, resumed])
    assert merged.val_dice == {0: 0.20, 1: 0.30, 2: 0.40, 3: 0.45}
    assert merged.train_loss == [0.9, 0.8, 0.75, 0.6, 0.5, 0.4] and merged.loss_epochs == [1, 1, 2, 2, 3, 3]


def test_changed_inputs_are_named():
    doc = {"input": {"bundle": {"configs_sha256": {"configs/train.json": "a"}}, "pretrained_weights": {"sha256": "w" * 64}}}
    manifest = {"inputs": {"dataset": {"files": {"imagesTr/x.nii.gz": {"sha256": "1"}}}}}
    found = resume.changes(doc, manifest, bundle={"configs/train.json": "b"}, weights_sha256="v" * 64,
                           dataset={"files": {"imagesTr/x.nii.gz": {"sha256": "2"}, "imagesTr/y.nii.gz": {"sha256": "3"}}})
    assert found == ["bundle files changed: configs/train.json",
                     "dataset files changed, added or removed: imagesTr/x.nii.gz, imagesTr/y.nii.gz",
                     f"the pretrained checkpoint changed (sha256 {'w' * 12} then, {'v' * 12} now)"]


@pytest.fixture
def planned(tmp_path) -> tuple[Path, Path]:
    """A copy of the fixture and a run of it that was planned (--dry-run) and never started."""
    data = shutil.copytree(FIXTURE, tmp_path / FIXTURE.name)
    shutil.copytree(REPO / "fixtures" / "micro_model", tmp_path / "micro_model")  # its card's ../micro_model
    out = tmp_path / "out"
    assert main([str(data), "--smoke", "--dry-run", "--output-dir", str(out)]) == 0
    return data, out


def test_resume_refuses_a_run_whose_data_changed_since_naming_the_file(planned, capsys):
    data, out = planned
    label = data / "labelsTr" / "spleen_01.nii.gz"
    old = nibabel.load(label)
    voxels = np.asarray(old.dataobj).copy()
    voxels[0, 0, 0] = 1  # one voxel relabelled since the stop
    nibabel.save(nibabel.Nifti1Image(voxels, old.affine, old.header), label)
    code = main(["--resume", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "the inputs changed since that run stopped" in err and "labelsTr/spleen_01.nii.gz" in err


@pytest.mark.parametrize("extra, phrase", [
    (["--epochs", "9"], "--epochs cannot change it"),
    (["somewhere"], "somewhere cannot change it"),
])
def test_resume_takes_its_recipe_from_out_alone(planned, capsys, extra, phrase):
    assert main(["--resume", str(planned[1]), *extra]) == 2 and phrase in capsys.readouterr().err


def test_resume_refuses_a_finished_run_and_a_folder_that_is_not_a_run(planned, capsys, tmp_path):
    out = planned[1]
    doc = json.loads((out / "output.json").read_text())
    (out / "output.json").write_text(json.dumps(doc | {"status": "passed"}))
    assert main(["--resume", str(out)]) == 2 and "there is nothing to resume" in capsys.readouterr().err
    assert main(["--resume", str(tmp_path)]) == 2 and "is not the output.json of an nvseg-finetune run" in \
        capsys.readouterr().err


def test_without_output_dir_or_resume_the_usage_says_both(capsys):
    with pytest.raises(SystemExit):
        main([str(FIXTURE), "--smoke"])
    assert "--output-dir (or --resume OUT)" in capsys.readouterr().err


def test_resume_reads_the_recorded_commands_relative_paths_from_where_it_was_typed(planned, monkeypatch):
    from nvseg_bench.cli import build_parser, resume_request

    data, out = planned
    doc = json.loads((out / "output.json").read_text())
    assert doc["invocation"]["launch_dir"] == str(Path.cwd())
    doc["invocation"] |= {"command": f"nvseg-finetune {data.name} --smoke --output-dir out",
                          "launch_dir": str(data.parent)}
    (out / "output.json").write_text(json.dumps(doc))
    monkeypatch.chdir("/")  # resumed from elsewhere
    req = resume_request(build_parser().parse_args(["--resume", str(out)]), ["--resume", str(out)])
    assert req.dataset_dir == data and req.output_dir == out.resolve() and req.resuming


def test_the_rng_module_staged_for_the_finetune_is_the_package_s_own_source_file(tmp_path):
    from nvseg_bench.stage.configs import Staged

    configs = tmp_path / "configs"
    configs.mkdir()
    stack = [*stack_of(REPO / "bundle"), str(configs / "dfw_no_logging.json")]
    staged = Staged(configs, configs / "auto_override.json", configs / "dfw_no_logging.json", None, stack, [],
                    tmp_path / "checkpoints")
    after = resume.attach(staged, tmp_path, None, amp=False)
    assert (configs / "nvseg_rng.py").read_bytes() == resume.RNG_FILE.read_bytes()
    assert "class RandomStates" in resume.RNG_FILE.read_text()
    assert after.train_stack == [*stack[:-1], str(configs / "resume.json"), stack[-1]]
