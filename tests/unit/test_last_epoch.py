"""Each CV fold keeps its final epoch (campaign/last_epoch.py): the staged saver, its place in the run list,
the extra evaluation, and the refusal on several processes."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from nvseg_bench.campaign.last_epoch import LAST_NAME, override, with_last_epoch
from nvseg_bench.cli import main
from nvseg_bench.errors import ArgumentError
from nvseg_bench.phase_names import EVAL_FINETUNED, EVAL_LAST, FINETUNE
from nvseg_bench.prepare import prepare
from nvseg_bench.inputs.request import Request

from ..helpers import REPO


def _write(path: Path, doc: dict) -> str:
    path.write_text(json.dumps(doc))
    return str(path)


def test_the_final_epoch_saver_is_attached_before_the_last_step_of_the_run_list_the_stack_ends_with(tmp_path):
    stack = [_write(tmp_path / "train.json", {"run": ["$@a()", "$@train#trainer.run()"]}),
             _write(tmp_path / "resume.json", {"run": ["$@a()", "$@saver.attach(@train#trainer)", "$@train#trainer.run()"]}),
             _write(tmp_path / "logging.json", {"use_mlflow": False})]
    values = override(stack, tmp_path / "ckpt")
    assert values["run"] == ["$@a()", "$@saver.attach(@train#trainer)", "$@nvseg_last_saver.attach(@train#trainer)",
                             "$@train#trainer.run()"]
    saver = values["nvseg_last_saver"]
    assert saver["save_dict"] == {"model": "@network"} and saver["save_final"] is True
    assert saver["final_filename"] == LAST_NAME and saver["save_dir"] == str(tmp_path / "ckpt")


def test_a_fold_scores_its_last_epoch_right_after_its_best_and_stages_the_saver_last(tmp_path):
    p = prepare(Request(dataset_dir=REPO / "fixtures" / "spleen_micro", smoke=True, output_dir=tmp_path / "out",
                        dry_run=True))
    kept = with_last_epoch(p, "last")
    assert list(kept.commands) == [*p.commands, EVAL_LAST] and list(p.commands)[-1] == EVAL_FINETUNED
    last = kept.commands[EVAL_LAST]
    assert last[last.index("--ckpt_path") + 1] == str(p.staged.ckpt_dir / LAST_NAME)
    assert last[last.index("--output_dir") + 1] == str(p.out_dir / EVAL_LAST)
    stack = json.loads(kept.commands[FINETUNE][kept.commands[FINETUNE].index("--config_file") + 1])
    assert stack == kept.staged.train_stack and Path(stack[-1]).name == "last_epoch.json"
    with pytest.raises(ArgumentError, match="--cv-checkpoint best"):
        with_last_epoch(replace(p, plan=replace(p.plan, multi_gpu=True)), "last")
    assert with_last_epoch(replace(p, plan=replace(p.plan, multi_gpu=True)), "best").commands == p.commands


def test_an_unknown_cv_checkpoint_is_refused_by_the_parser(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        main([str(REPO / "fixtures" / "spleen_micro"), "--smoke", "--folds", "all", "--cv-checkpoint", "luckiest",
              "--output-dir", str(tmp_path / "out")])
    assert stopped.value.code == 2 and "invalid choice: 'luckiest'" in capsys.readouterr().err
