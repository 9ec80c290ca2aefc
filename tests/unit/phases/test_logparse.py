"""Reading bundle logs: the validation trace, the loss, telemetry and out-of-memory lines."""
from __future__ import annotations

import math

from nvseg_bench.evidence.collect import training_trace
from nvseg_bench.phases.logparse import parse_lines

LOG = """\
2026-11-26 19:30:27,103 - INFO - Epoch[0] Metrics -- val_mean_dice: 0.6763
2026-11-26 19:30:29,091 - INFO - Epoch: 1/2, Iter: 1/2 -- train_loss: 0.9000
2026-11-26 19:30:30,749 - INFO - Epoch: 1/2, Iter: 2/2 -- train_loss: 0.8000
2026-11-26 19:30:35,387 - INFO - Epoch[1] Metrics -- val_mean_dice: 0.6889
NVSEG_TELEMETRY {"phase": "train", "peak_gpu_mb": 10381.0, "peak_rss_mb": 900.0}
2026-11-26 19:30:36,868 - INFO - Epoch: 2/2, Iter: 1/2 -- train_loss: 0.7000
2026-11-26 19:30:38,316 - INFO - Epoch: 2/2, Iter: 2/2 -- train_loss: nan
2026-11-26 19:30:42,770 - INFO - Epoch[2] Metrics -- val_mean_dice: 0.6872
"""


def test_log_yields_the_validation_trace_by_epoch():
    facts = parse_lines(LOG.splitlines())
    assert facts.val_dice == {0: 0.6763, 1: 0.6889, 2: 0.6872}


def test_trace_reports_start_best_and_best_index():
    trace = training_trace(parse_lines(LOG.splitlines()))
    assert trace["training_start_val_dice"] == 0.6763
    assert trace["training_best_val_dice"] == 0.6889 and trace["training_best_epoch_index"] == 1


def test_a_nan_loss_makes_the_loss_not_finite():
    trace = training_trace(parse_lines(LOG.splitlines()))
    assert trace["train_loss_first"] == 0.9 and math.isnan(trace["train_loss_last"])
    assert trace["train_loss_finite"] is False


def test_telemetry_lines_give_peak_gpu_memory():
    assert parse_lines(LOG.splitlines()).peak("peak_gpu_mb") == 10381.0


def test_oom_is_detected_in_a_log():
    assert parse_lines(["RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"]).oom
