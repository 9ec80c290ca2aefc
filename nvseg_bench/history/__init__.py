"""Saved runs: the record of a finished run, the store that keeps one JSON file per run, the
comparison of a run with a saved baseline, and the rule that calls a difference a regression.

Read by the pytest harness (--nvseg-autosave, --nvseg-compare, --nvseg-compare-fail), by
`nvseg-finetune history` / `compare` / `--save-to`, and by `python -m nvseg_bench.references`.
Plain JSON and numpy; no torch, no monai, no network.
"""
