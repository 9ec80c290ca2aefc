"""The kept pretrained passes (the formal evaluation of either split, the forgetting pass): each key follows
everything that phase reads and nothing it does not (seed, epochs, learning rate, output dir, training cases),
and a kept pass comes back whole or not at all."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel
import numpy as np
import pytest

from dataclasses import replace

from nvseg_bench.phase_names import EVAL_PRETRAINED, EVAL_TEST_PRETRAINED, FORGET_PRETRAINED
from nvseg_bench.phases import eval_memo
from nvseg_bench.cli import build_parser, to_request
from nvseg_bench.phases.runner import PhaseResult
from nvseg_bench.prepare import prepare

from ...helpers import FIXTURE

LOG = """$ python -m monai.bundle run ...
NVSEG_TELEMETRY {"phase": "evaluate", "cuda": false, "peak_gpu_mb": 0.0, "peak_rss_mb": 400.0, "seconds": 0.002, "event": "attached", "epoch": 0}
2026-11-27 23:35:04,617 - INFO - Epoch[1] Metrics -- val_mean_dice: 0.1778
NVSEG_TELEMETRY {"phase": "evaluate", "cuda": false, "peak_gpu_mb": 0.0, "peak_rss_mb": 644.1, "seconds": 24.84, "event": "completed", "epoch": 1}
"""


def _prepared(tmp_path: Path, name: str, *flags: str, data: Path = FIXTURE):
    argv = [str(data), "--smoke", "--output-dir", str(tmp_path / name), "--preprocess-cache", str(tmp_path / "cache"),
            "--dry-run", *flags]
    return prepare(to_request(build_parser().parse_args(argv), argv))


def test_the_key_ignores_the_output_dir_and_training_only_values(tmp_path):
    first = eval_memo.key(_prepared(tmp_path, "a"))
    assert first is not None
    assert eval_memo.key(_prepared(tmp_path, "b", "--seed", "3", "--epochs", "2", "--learning-rate", "0.01",
                                   "--cache-rate", "0.5")) == first


@pytest.mark.parametrize("flags", [["--patch-size", "[48,48,48]"], ["--label-mapping", "[[1, 1]]"], ["--no-auto-seg"]])
def test_the_key_changes_with_what_the_evaluation_reads(tmp_path, flags):
    assert eval_memo.key(_prepared(tmp_path, "b", *flags)) != eval_memo.key(_prepared(tmp_path, "a"))


def test_the_key_changes_with_the_checkpoint_and_a_validation_cases_bytes(tmp_path):
    base = eval_memo.key(_prepared(tmp_path, "a"))
    ckpt = tmp_path / "model.pt"
    fixture_ckpt = json.loads((FIXTURE / "fixture.json").read_text())["pretrained_ckpt"]
    shutil.copy((FIXTURE / fixture_ckpt).resolve(), ckpt)
    ckpt.write_bytes(ckpt.read_bytes() + b"\0")
    assert eval_memo.key(_prepared(tmp_path, "other", "--pretrained-ckpt", str(ckpt))) != base
    data = tmp_path / "spleen_micro"
    shutil.copytree(FIXTURE, data)
    shutil.copytree(FIXTURE.parent / "micro_model", tmp_path / "micro_model")  # fixture.json points at ../micro_model
    copied = eval_memo.key(_prepared(tmp_path, "copy", data=data))
    fold0 = next(e for e in json.loads((data / "datalist.json").read_text())["training"] if e["fold"] == 0)
    label = data / fold0["label"]
    label.write_bytes(label.read_bytes() + b"")  # same bytes, new mtime: the same digest
    assert eval_memo.key(_prepared(tmp_path, "touched", data=data)) == copied
    image = nibabel.load(data / fold0["image"])
    voxels = np.asanyarray(image.dataobj).copy()
    voxels[0, 0, 0] += 1  # one voxel: the same grid, other bytes
    nibabel.save(nibabel.Nifti1Image(voxels, image.affine, image.header), data / fold0["image"])
    assert eval_memo.key(_prepared(tmp_path, "changed", data=data)) != copied


def _ran(p) -> PhaseResult:
    (p.out_dir / "eval_pretrained").mkdir(parents=True)
    (p.out_dir / "eval_pretrained" / "metrics.csv").write_text("val_mean_dice\t0.1778\n")
    (p.out_dir / "logs").mkdir(exist_ok=True)
    log = p.out_dir / "logs" / "eval_pretrained.log"
    log.write_text(LOG)
    return PhaseResult(name="eval_pretrained", command=p.commands["eval_pretrained"], log_path=str(log), return_code=0,
                       seconds=26.0, peak_rss_mb=650.0, arrivals={"attached": 1.0, "completed": 25.8}, start="warm")


def test_a_kept_evaluation_comes_back_into_the_next_runs_folder(tmp_path):
    first = _prepared(tmp_path, "a")
    found = eval_memo.key(first)
    eval_memo.keep(first.cache.root, found, _ran(first), first)
    second = _prepared(tmp_path, "b", "--seed", "1")
    (second.out_dir / "logs").mkdir()
    kept, run_dir = eval_memo.recall(second.cache.root, found, second)
    assert run_dir == str(first.out_dir) and kept.reused_from == found
    assert (second.out_dir / "eval_pretrained" / "metrics.csv").read_text() == "val_mean_dice\t0.1778\n"
    assert Path(kept.log_path).read_text() == LOG and kept.log_path.startswith(str(second.out_dir))
    assert (kept.seconds, kept.peak_rss_mb, kept.start, kept.command) == (26.0, 650.0, "warm", second.commands["eval_pretrained"])
    assert kept.timing() == {"startup_s": 1.0, "engine_s": 24.8, "teardown_s": 0.2}
    assert kept.facts.val_dice and kept.facts.peak("peak_rss_mb") == 644.1


def test_a_failed_evaluation_is_not_kept_and_a_damaged_one_is_not_used(tmp_path):
    p = _prepared(tmp_path, "a")
    found = eval_memo.key(p)
    failed = _ran(p)
    failed.return_code = 1
    eval_memo.keep(p.cache.root, found, failed, p)
    assert eval_memo.recall(p.cache.root, found, p) is None
    eval_memo.keep(p.cache.root, found, _ran(_prepared(tmp_path, "b")), p)
    (p.cache.root / eval_memo.KEPT / found / eval_memo.RESULT).write_text("{not json")
    assert eval_memo.recall(p.cache.root, found, p) is None
    assert not list((p.cache.root / eval_memo.KEPT).glob(".*"))  # no half-written entry left behind


FORGET = ["--forgetting-check", "liver,aorta"]  # on for a CPU smoke run only when asked


def _both(p) -> tuple[str | None, str | None]:
    return eval_memo.key(p, EVAL_PRETRAINED), eval_memo.key(p, FORGET_PRETRAINED)


def _copy(tmp_path: Path) -> Path:
    data = tmp_path / "spleen_micro"
    shutil.copytree(FIXTURE, data)
    shutil.copytree(FIXTURE.parent / "micro_model", tmp_path / "micro_model")  # fixture.json points at ../micro_model
    return data


def _nudge(path: Path) -> None:
    """One voxel more: the same grid, other bytes."""
    image = nibabel.load(path)
    voxels = np.asanyarray(image.dataobj).copy()
    voxels[0, 0, 0] += 1
    nibabel.save(nibabel.Nifti1Image(voxels, image.affine, image.header), path)


def _entries(data: Path) -> list[dict]:
    return json.loads((data / "datalist.json").read_text())["training"]


def test_each_pretrained_pass_has_its_own_key_and_only_those_do(tmp_path):
    p = _prepared(tmp_path, "a", *FORGET)
    keys = _both(p)
    assert None not in keys and keys[0] != keys[1]
    assert eval_memo.key(p, "finetune") is None and eval_memo.key(p, "forget_finetuned") is None


@pytest.mark.parametrize("flags", [["--seed", "3"], ["--epochs", "2"], ["--learning-rate", "0.01"],
                                   ["--cache-rate", "0.5"]])
def test_no_pass_key_moves_with_a_training_only_value_or_the_output_dir(tmp_path, flags):
    assert _both(_prepared(tmp_path, "b", *FORGET, *flags)) == _both(_prepared(tmp_path, "a", *FORGET))


def test_the_forgetting_key_moves_with_the_prompts_and_not_with_the_count_kept(tmp_path):
    base = _both(_prepared(tmp_path, "a", *FORGET))
    other = _both(_prepared(tmp_path, "b", "--forgetting-check", "liver,stomach"))
    assert other[1] != base[1] and other[0] == base[0]
    # a count prompts every other class and keeps the N the pretrained maps show most of: the same pass for any N
    assert (eval_memo.key(_prepared(tmp_path, "c", "--forgetting-check", "3"), FORGET_PRETRAINED)
            == eval_memo.key(_prepared(tmp_path, "d", "--forgetting-check", "5"), FORGET_PRETRAINED))


def test_every_pass_key_moves_with_a_number_changing_config_value(tmp_path):
    base = _both(_prepared(tmp_path, "a", *FORGET))
    other = _both(_prepared(tmp_path, "b", *FORGET, "--patch-size", "[48,48,48]"))
    assert other[0] != base[0] and other[1] != base[1]


def test_the_label_mapping_moves_the_evaluation_key_only(tmp_path):
    """The forgetting pass reads the images, not the labels; with named classes its prompts stay the same."""
    base = _both(_prepared(tmp_path, "a", *FORGET))
    other = _both(_prepared(tmp_path, "b", *FORGET, "--label-mapping", "[[1, 4]]"))
    assert other[0] != base[0] and other[1] == base[1]


def test_every_pass_key_moves_with_the_checkpoint_bytes(tmp_path):
    ckpt = tmp_path / "model.pt"
    fixture_ckpt = json.loads((FIXTURE / "fixture.json").read_text())["pretrained_ckpt"]
    shutil.copy((FIXTURE / fixture_ckpt).resolve(), ckpt)
    same = _both(_prepared(tmp_path, "same", *FORGET, "--pretrained-ckpt", str(ckpt)))
    assert same == _both(_prepared(tmp_path, "a", *FORGET))  # the same bytes elsewhere: the same passes
    ckpt.write_bytes(ckpt.read_bytes() + b"\0")
    other = _both(_prepared(tmp_path, "other", *FORGET, "--pretrained-ckpt", str(ckpt)))
    assert other[0] != same[0] and other[1] != same[1]


def test_a_validation_case_moves_every_key_and_a_training_case_none(tmp_path):
    data = _copy(tmp_path)
    copied = _both(_prepared(tmp_path, "copy", *FORGET, data=data))
    assert copied == _both(_prepared(tmp_path, "a", *FORGET))  # the dataset's folder is not a number's input
    _nudge(data / next(e for e in _entries(data) if e["fold"] != 0)["image"])
    assert _both(_prepared(tmp_path, "training", *FORGET, data=data)) == copied
    _nudge(data / next(e for e in _entries(data) if e["fold"] == 0)["image"])
    moved = _both(_prepared(tmp_path, "validation", *FORGET, data=data))
    assert moved[0] != copied[0] and moved[1] != copied[1]


def test_the_test_split_pass_is_keyed_by_its_testing_cases(tmp_path):
    """A phase scoring the datalist's `testing` cases (phase_names.EVAL_SPLITS) needs no code of its own here."""
    data = _copy(tmp_path)
    entries = _entries(data)
    test_case, training_case = entries[-1], next(e for e in entries if e["fold"] != 0)
    datalist = tmp_path / "with-test.json"
    datalist.write_text(json.dumps({"training": entries[:-1], "testing": [test_case]}))

    def test_key(name: str) -> str | None:
        p = _prepared(tmp_path, name, data=data)
        command = [*p.commands[EVAL_PRETRAINED], "--data_list_file_path", str(datalist)]
        return eval_memo.key(replace(p, commands=p.commands | {EVAL_TEST_PRETRAINED: command}), EVAL_TEST_PRETRAINED)

    base = test_key("a")
    assert base is not None and base == test_key("b")
    _nudge(data / training_case["image"])
    assert test_key("c") == base
    _nudge(data / test_case["image"])
    assert test_key("d") != base

