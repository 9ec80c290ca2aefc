"""The names of a run's phases: each is a `monai.bundle run` child process, its log (`OUT/logs/NAME.log`)
and, for the evaluations and the forgetting check, its output folder (`OUT/NAME/`). Every module that
names a phase takes the name from here. Plain strings, so they read the same in output.json, in logs and
in f-strings; no imports.
"""
from __future__ import annotations

EVAL_PRETRAINED = "eval_pretrained"  # formal evaluation of the start checkpoint
FINETUNE = "finetune"  # continual-learning training, validation after each epoch
EVAL_FINETUNED = "eval_finetuned"  # the same formal evaluation of the kept finetuned checkpoint
FORGET_PRETRAINED = "forget_pretrained"  # the forgetting check: other classes, pretrained checkpoint
FORGET_FINETUNED = "forget_finetuned"  # ... and the finetuned checkpoint
PREDICT = "predict"  # nvseg-finetune predict: new scans through the bundle's inference.json

RUN_ORDER = (EVAL_PRETRAINED, FINETUNE, EVAL_FINETUNED)  # a run's core phases, in the order they run
FORGETTING = (FORGET_PRETRAINED, FORGET_FINETUNED)
