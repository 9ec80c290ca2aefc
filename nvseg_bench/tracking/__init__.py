"""Tracking, opt-in (`--tracking mlflow[=URI]`, `--tracking tensorboard`): a finetune's curves, recipe and
verdict in the team's experiment tracker.

choice.py parses the flag and refuses it before any phase (no mlflow import); bundle.py switches the
bundle's own handlers on in the finetune phase, their output outside the bundle; mlflow_run.py (the only
module that imports mlflow, and only when asked) opens the run the bundle's handler logs into and adds
the tool's figures, tables and files to it after the run. Nothing here changes what a run computes.
"""
