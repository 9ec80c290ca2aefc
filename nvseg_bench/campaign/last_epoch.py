"""Cross-validation without selection on the scored cases: each fold's last epoch, kept and scored.

A fold's finetune validates on the fold's own cases and the bundle keeps the epoch with the best validation
Dice (model_finetune.pt), so that checkpoint's score on those cases is optimistic: they chose it. nnU-Net
reports cross-validation on each fold's final checkpoint. So every fold's finetune also saves the final
epoch's network, and one more formal evaluation scores it on the fold's cases:

- saving, by config override only (NVIDIA's bundle runs unchanged): MONAI's CheckpointSaver with
  `save_final`, the network alone (a plain state dict, as model_finetune.pt), written once when training
  completes, to OUT/fold-K/checkpoints/model_last.pt; staged in OUT/fold-K/configs/last_epoch.json, last in
  the train stack, with the stack's `run` list and the saver attached before its final step. The epoch
  checkpoint with the optimizer (stage/resume.py) is still removed after the finetune, so a fold keeps two
  network-only files: the best epoch's and the last epoch's;
- scoring: EVAL_LAST, the fold's eval_finetuned command with that checkpoint and OUT/fold-K/eval_last.

`--cv-checkpoint last` (default) pools the eval_last scores; `best` the eval_finetuned ones. Both are
reported either way (evidence/selection.py). Several processes would each write the file, so a multi-GPU
fold saves none and its CV reports no last-epoch score. No torch, no monai.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from nvseg_bench.campaign.members import with_values
from nvseg_bench.errors import ArgumentError
from nvseg_bench.phase_names import EVAL_FINETUNED, EVAL_LAST, FINETUNE
from nvseg_bench.prepared import Prepared

LAST_NAME = "model_last.pt"
STAGED = "last_epoch.json"
CHOICES = ("last", "best")


def stack_run(stack: list[str]) -> list[Any]:
    """The `run` list the train stack ends with (the last file that sets it wins, as in MONAI)."""
    found: list[Any] = []
    for name in stack:
        path = Path(name)
        config = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        if isinstance(config.get("run"), list):
            found = config["run"]
    return found


def override(stack: list[str], ckpt_dir: Path) -> dict[str, Any]:
    """The final-epoch saver and the stack's `run` list with it attached just before the last step (the trainer's run)."""
    steps = stack_run(stack)
    saver = {"_target_": "CheckpointSaver", "save_dir": str(ckpt_dir), "save_dict": {"model": "@network"},
             "save_final": True, "final_filename": LAST_NAME}
    return {"nvseg_last_saver": saver,
            "run": [*steps[:-1], "$@nvseg_last_saver.attach(@train#trainer)", *steps[-1:]]}


def last_ckpt(p: Prepared) -> Path:
    return p.staged.ckpt_dir / LAST_NAME


def with_last_epoch(p: Prepared, choice: str) -> Prepared:
    """A fold's prepared run that also keeps and scores its last epoch; unchanged on several processes, where
    `--cv-checkpoint last` is refused (before any phase)."""
    if p.plan.multi_gpu:
        if choice == "last":
            raise ArgumentError("--cv-checkpoint last keeps each fold's final-epoch weights, which a multi-GPU "
                                "finetune does not save here (every process would write the file).",
                                fix=["Pass --cv-checkpoint best (the best epoch, chosen on the scored cases), or run "
                                     "the cross-validation on one GPU."])
        return p
    path = p.staged.config_dir / STAGED
    path.write_text(json.dumps(override(p.staged.train_stack, p.staged.ckpt_dir), indent=2) + "\n", encoding="utf-8")
    stack = [*p.staged.train_stack, str(path)]
    commands: dict[str, list[str]] = {}
    for name, command in p.commands.items():
        commands[name] = with_values(command, {"config_file": json.dumps(stack)}) if name == FINETUNE else command
        if name == EVAL_FINETUNED:  # scored right after the best epoch, on the same cases
            commands[EVAL_LAST] = with_values(command, {"ckpt_path": str(last_ckpt(p)),
                                                        "output_dir": str(p.out_dir / EVAL_LAST)})
    return replace(p, staged=replace(p.staged, train_stack=stack), commands=commands)
