"""`nvseg-finetune predict`: new scans segmented with a run's checkpoint through the bundle's inference config."""
from __future__ import annotations

import json
import pickle
import shutil
import zipfile
from pathlib import Path

import nibabel
import numpy as np
import pytest

from nvseg_bench import predict as predicting
from nvseg_bench.cli import main
from nvseg_bench.phases.runner import PhaseResult
from nvseg_bench.store.files import sha256_file

from ..helpers import FIXTURE, REPO

MICRO = REPO / "fixtures" / "micro_model"


def _fake_run(tmp_path: Path, status: str = "passed") -> Path:
    """A run dir laid out as a finished run (output.json, its checkpoint, the micro network config), recorded at
    another place than where it lies now, as a copied folder is; no phase needed for the refusals."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "configs").mkdir()
    shutil.copyfile(MICRO / "model.pt", run / "checkpoints" / "model_finetune.pt")
    shutil.copyfile(MICRO / "network.json", run / "configs" / "network.json")
    old = "/elsewhere/run"
    doc = {"status": status, "output": {"recommended_ckpt": f"{old}/checkpoints/model_finetune.pt",
                                        "pretrained_ckpt": str(MICRO / "model.pt")},
           "input": {"bundle": {"source": "builtin", "path": "/elsewhere/bundle"},
                     "label_mappings": {"default": [[1, 3]]}, "label_names": {"3": "spleen"},
                     "pretrained_weights": {"sha256": sha256_file(MICRO / "model.pt")}},
           "invocation": {"cwd": old}, "plan": {"patch_size": [64, 64, 64], "sw_overlap": 0.25}}
    (run / "output.json").write_text(json.dumps(doc))
    return run


def _scan(folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    image = folder / "ct.nii.gz"
    nibabel.save(nibabel.Nifti1Image(np.zeros((8, 8, 8), np.int16), np.eye(4)), str(image))
    return image


@pytest.fixture
def no_phase(monkeypatch):
    """Stands in for the bundle phase: records what it was asked to run and fails, so nothing is inferred."""
    started: list = []

    def fake(spec, cwd, env, **_):
        started.append(spec)
        return PhaseResult(spec.name, spec.command, str(spec.log_path), return_code=1)

    monkeypatch.setattr(predicting, "run_phase", fake)
    return started


def _edit(path: Path, change) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize("case", ["not_a_run", "unfinished", "missing_checkpoint", "not_3d", "output_inside"])
def test_bad_input_is_exit_2_with_one_paragraph_and_nothing_written(tmp_path, capsys, case):
    run, images, out = _fake_run(tmp_path, "failed" if case == "unfinished" else "passed"), tmp_path / "images", \
        tmp_path / "out"
    images.mkdir()
    image = images / "ct.nii.gz"
    shape = (8, 8) if case == "not_3d" else (8, 8, 8)
    nibabel.save(nibabel.Nifti1Image(np.zeros(shape, np.int16), np.eye(4)), str(image))
    argv = ["predict", str(tmp_path if case == "not_a_run" else run), str(images), "--output-dir",
            str(images / "out" if case == "output_inside" else out)]
    argv += ["--checkpoint", str(tmp_path / "nope.pt")] if case == "missing_checkpoint" else []
    assert main(argv) == 2
    err = capsys.readouterr().err
    expected = {"not_a_run": "is not an nvseg-finetune run dir", "unfinished": "did not finish",
                "missing_checkpoint": "nope.pt is not a file", "not_3d": "not a 3D volume",
                "output_inside": "lies inside the input folder"}[case]
    assert expected in err and "Traceback" not in err
    assert not out.exists() and not (images / "out").exists()


CODE_IN_CONFIG = {
    "expression in network_def": lambda d: d["network_def"].update(in_channels="$__import__('os').system('x')"),
    "target outside the network": lambda d: d.update(micro_feature_size={"_target_": "os.system", "command": "x"}),
    "target that is not a network class": lambda d: d["network_def"].update(_target_="builtins.eval"),
    "target reaching a module's import": lambda d: d["network_def"].update(_target_="monai.networks.nets.vista3d.torch.load"),
    "target naming a function": lambda d: d["network_def"].update(_target_="monai.networks.nets.vista3d.vista3d132"),
    "requires key": lambda d: d["network_def"].update(_requires_="$print('x')"),
    "debug mode": lambda d: d["network_def"].update(_mode_="debug"),
    "macro from another file": lambda d: d["network_def"].update(class_head="%/tmp/evil.json#head"),
    "reference into another id": lambda d: d["network_def"].update(point_head="@inferer#x"),
    "extra top-level id": lambda d: d.update(inferer={"overlap": 0.9}),
    "nested id override": lambda d: d.update({"dataset#data": []}),
}


@pytest.mark.parametrize("edit", CODE_IN_CONFIG, ids=list(CODE_IN_CONFIG))
def test_a_network_config_that_carries_code_is_refused_naming_the_file_with_nothing_run(tmp_path, capsys, no_phase,
                                                                                       edit):
    run = _fake_run(tmp_path)
    _edit(run / "configs" / "network.json", CODE_IN_CONFIG[edit])
    assert main(["predict", str(run), str(_scan(tmp_path / "images")), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{run / 'configs' / 'network.json'} cannot be used by predict" in err and "Traceback" not in err
    assert no_phase == [] and not (tmp_path / "out").exists()


PLAIN_VALUES = {
    "mapping as an expression": lambda d: d["input"]["label_mappings"].update(default="$[[1, 3]]"),
    "mapping out of range": lambda d: d["input"]["label_mappings"].update(default=[[1, 10**9]]),
    "patch size as a reference": lambda d: d["plan"].update(patch_size="@patch_size"),
    "patch size too large": lambda d: d["plan"].update(patch_size=[10**6, 64, 64]),
    "overlap as an expression": lambda d: d["plan"].update(sw_overlap="$0.9"),
    "amp as a string": lambda d: d["plan"].update(amp="$True"),
    "class names as a list": lambda d: d["input"].update(label_names=["$x"]),
}


@pytest.mark.parametrize("edit", PLAIN_VALUES, ids=list(PLAIN_VALUES))
def test_output_json_values_of_the_wrong_type_or_range_are_refused_with_nothing_run(tmp_path, capsys, no_phase, edit):
    run = _fake_run(tmp_path)
    _edit(run / "output.json", PLAIN_VALUES[edit])
    assert main(["predict", str(run), str(_scan(tmp_path / "images")), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{run / 'output.json'} cannot be used by predict" in err and "Traceback" not in err
    assert no_phase == [] and not (tmp_path / "out").exists()


def _pickle_naming_code(path: Path) -> None:
    """The micro checkpoint with its pickle replaced by one that would call os.system when loaded."""
    with zipfile.ZipFile(MICRO / "model.pt") as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            dst.writestr(info, pickle.dumps(shutil.rmtree, protocol=2) if info.filename.endswith("/data.pkl") else data)


@pytest.mark.parametrize("kind", ["pickle naming code", "not a torch archive", "no tensors"])
def test_a_checkpoint_that_is_not_a_plain_state_dict_is_refused_naming_it(tmp_path, capsys, no_phase, kind):
    run = _fake_run(tmp_path)
    ckpt = run / "checkpoints" / "model_finetune.pt"
    if kind == "pickle naming code":
        _pickle_naming_code(ckpt)
    elif kind == "not a torch archive":
        ckpt.write_bytes(b"cos\nsystem\n(S'true'\ntR.")
    else:
        with zipfile.ZipFile(ckpt, "w") as archive:
            archive.writestr("model/data.pkl", pickle.dumps({}, protocol=2))
    assert main(["predict", str(run), str(_scan(tmp_path / "images")), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{ckpt} cannot be used by predict" in err and "Traceback" not in err
    assert no_phase == [] and not (tmp_path / "out").exists()


def test_a_copied_run_folder_predicts_with_the_copys_checkpoint_and_its_own_network_copy(tmp_path, no_phase):
    original = _fake_run(tmp_path)
    copy = tmp_path / "moved" / "run"
    shutil.copytree(original, copy)
    assert main(["predict", str(copy), str(_scan(tmp_path / "images")), "--output-dir", str(tmp_path / "out")]) == 3
    [spec] = no_phase
    override = json.loads((tmp_path / "out" / "configs" / "predict_override.json").read_text())
    assert override["ckpt_path"] == str(copy / "checkpoints" / "model_finetune.pt")
    assert str(original) not in " ".join(spec.command) and str(REPO / "bundle") in " ".join(spec.command)
    staged = tmp_path / "out" / "configs" / "network.json"
    assert str(staged) in " ".join(spec.command) and str(copy / "configs" / "network.json") not in " ".join(spec.command)
    assert json.loads(staged.read_text()) == json.loads((MICRO / "network.json").read_text())


def test_a_copied_run_folder_whose_checkpoint_was_deleted_is_refused_though_the_original_exists(tmp_path, capsys,
                                                                                                  no_phase):
    original = _fake_run(tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    (copy / "checkpoints" / "model_finetune.pt").unlink()
    recorded = {"cwd": str(original), "ckpt": str(original / "checkpoints" / "model_finetune.pt")}  # the original's
    _edit(copy / "output.json", lambda d: (d["invocation"].update(cwd=recorded["cwd"]),
                                           d["output"].update(recommended_ckpt=recorded["ckpt"])))
    assert main(["predict", str(copy), str(_scan(tmp_path / "images")), "--output-dir", str(tmp_path / "out")]) == 2
    assert "is not a file inside the run folder" in capsys.readouterr().err
    assert no_phase == [] and not (tmp_path / "out").exists()


def test_a_checkpoint_link_that_leaves_the_run_folder_is_refused(tmp_path, capsys, no_phase):
    run = _fake_run(tmp_path)
    ckpt = run / "checkpoints" / "model_finetune.pt"
    ckpt.unlink()
    ckpt.symlink_to(MICRO / "model.pt")
    assert main(["predict", str(run), str(_scan(tmp_path / "images")), "--output-dir", str(tmp_path / "out")]) == 2
    assert "is not a file inside the run folder" in capsys.readouterr().err and no_phase == []


ODD_INPUTS = {
    "missing run dir": ("does not exist", lambda t, run, scan: [str(t / "nope"), str(scan), "--output-dir", str(t / "out")]),
    "run dir is a file": ("is not a folder", lambda t, run, scan: [str(scan), str(scan), "--output-dir", str(t / "out")]),
    "run dir without output.json": ("has no readable output.json",
                                    lambda t, run, scan: [str(run / "configs"), str(scan), "--output-dir", str(t / "out")]),
    "a scan that is not NIfTI": ("notes.nii.gz", lambda t, run, scan: [str(run), str(_not_nifti(t)), "--output-dir",
                                                                     str(t / "out")]),
    "output dir is the scans' folder": ("beside the scans",
                                        lambda t, run, scan: [str(run), str(scan), "--output-dir", str(scan.parent)]),
    "output dir is a file": ("is a file, not a folder",
                             lambda t, run, scan: [str(run), str(scan), "--output-dir", str(run / "output.json")]),
    "a folder with no scans": ("no .nii.gz or .nii image", lambda t, run, scan: [str(run), str(run / "configs"),
                                                                                "--output-dir", str(t / "out")]),
    "a run on its own bundle": ("--bundle-dir", lambda t, run, scan: [str(_own_bundle(run)), str(scan), "--output-dir",
                                                                       str(t / "out")]),
}


def _not_nifti(tmp_path: Path) -> Path:
    path = tmp_path / "notes.nii.gz"
    path.write_text("not an image")
    return path


def _own_bundle(run: Path) -> Path:
    _edit(run / "output.json", lambda d: d["input"].update(bundle={"source": "dir", "path": str(run / "evil")}))
    return run


@pytest.mark.parametrize("case", ODD_INPUTS, ids=list(ODD_INPUTS))
def test_odd_inputs_are_exit_2_with_one_paragraph_and_nothing_written_beside_them(tmp_path, capsys, no_phase, case):
    run, scan = _fake_run(tmp_path), _scan(tmp_path / "images")
    expected, argv = ODD_INPUTS[case]
    before = sorted(p.name for p in scan.parent.iterdir())
    assert main(["predict", *argv(tmp_path, run, scan)]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err and "internal error" not in err
    assert no_phase == [] and not (tmp_path / "out").exists() and sorted(p.name for p in scan.parent.iterdir()) == before


@pytest.mark.slow
def test_predict_writes_label_maps_in_each_images_grid_that_score_as_the_formal_evaluation(smoke_run, tmp_path,
                                                                                            capsys):
    cases = sorted(Path(k).name.removesuffix(".nii.gz") for k in smoke_run.doc["output"]["formal_finetuned_per_case"])
    images = [str(FIXTURE / "imagesTr" / f"{case}.nii.gz") for case in cases]
    assert main(["predict", str(smoke_run.out), *images, "--output-dir", str(tmp_path / "pred")]) == 0
    assert "2 of 2 images segmented with the recommended checkpoint" in capsys.readouterr().out
    doc = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert doc["checkpoint"] == smoke_run.doc["output"]["recommended_ckpt"] and len(doc["images"]) == len(cases)
    for case, row in zip(cases, doc["images"]):
        image = nibabel.load(FIXTURE / "imagesTr" / f"{case}.nii.gz")
        found = nibabel.load(row["label_map"])
        labels = np.asarray(found.dataobj)
        assert found.shape == image.shape and np.allclose(found.affine, image.affine)
        assert set(np.unique(labels)) <= {0, 1} and row["voxels"]["1"] == int((labels == 1).sum()) > 0
        truth = np.asarray(nibabel.load(FIXTURE / "labelsTr" / f"{case}.nii.gz").dataobj) == 1
        dice = 2 * float((truth & (labels == 1)).sum()) / float(truth.sum() + (labels == 1).sum())
        formal = smoke_run.doc["output"]["formal_finetuned_per_case"][f"{case}.nii.gz"]
        assert abs(dice - formal) <= 0.02, (case, dice, formal)
        assert row["anatomy"]["1"]["class_name"] == "spleen" and isinstance(row["plausible"], bool)


def test_a_full_disk_while_writing_a_label_map_is_exit_3_naming_the_folder(tmp_path, capsys, monkeypatch):
    import errno

    run, out = _fake_run(tmp_path), tmp_path / "out"

    def phase_that_fills_the_disk(spec, cwd, env, **_):
        raise OSError(errno.ENOSPC, "No space left on device", str(out / "raw" / "ct_seg.nii.gz"))

    monkeypatch.setattr(predicting, "run_phase", phase_that_fills_the_disk)
    assert main(["predict", str(run), str(_scan(tmp_path / "images")), "--output-dir", str(out)]) == 3
    err = capsys.readouterr().err
    assert f"the disk holding {out / 'raw'} is full" in err and "Traceback" not in err
