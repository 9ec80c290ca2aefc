"""eval_engine: the trusted CPU verifier of nvseg-bench evidence packs.

`python -m eval_engine.run_trusted` audits a run's output directory (its "pack") and re-derives
every number it can (Dice from the saved predictions, tensor comparisons, hashes) with its own
small code. It never imports nvseg_bench and never runs the bundle; fixture mode calls the
project's CLI as a subprocess.
"""
VERSION = "0.1.0"
