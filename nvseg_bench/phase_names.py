"""The names of a run's phases: each is a `monai.bundle run` child process, its log (`OUT/logs/NAME.log`)
and, for the evaluations and the forgetting check, its output folder (`OUT/NAME/`). Every module that
names a phase takes the name from here. Plain strings, so they read the same in output.json, in logs and
in f-strings; no imports.
"""
from __future__ import annotations

EVAL_PRETRAINED = "eval_pretrained"  # formal evaluation of the start checkpoint
FINETUNE = "finetune"  # continual-learning training, validation after each epoch
EVAL_FINETUNED = "eval_finetuned"  # the same formal evaluation of the kept finetuned checkpoint
EVAL_LAST = "eval_last"  # a CV fold's final-epoch weights on the fold's own cases (campaign/last_epoch.py)
EVAL_TEST_PRETRAINED = "eval_test_pretrained"  # the start checkpoint on the datalist's labelled `testing` cases
EVAL_TEST_FINETUNED = "eval_test_finetuned"  # ... and the kept finetuned checkpoint on them
FORGET_PRETRAINED = "forget_pretrained"  # the forgetting check: other classes, pretrained checkpoint
FORGET_FINETUNED = "forget_finetuned"  # ... and the finetuned checkpoint
PREDICT = "predict"  # nvseg-finetune predict: new scans through the bundle's inference.json

RUN_ORDER = (EVAL_PRETRAINED, FINETUNE, EVAL_FINETUNED)  # a run's core phases, in the order they run
FORGETTING = (FORGET_PRETRAINED, FORGET_FINETUNED)
# each split a formal evaluation scores: (the phase scoring the start checkpoint, the one scoring the kept one)
EVAL_SPLITS = {"validation": (EVAL_PRETRAINED, EVAL_FINETUNED), "test": (EVAL_TEST_PRETRAINED, EVAL_TEST_FINETUNED)}
