"""Python parts of the nvseg-bench VISTA3D bundle, imported by the configs as `scripts.*`.

This package runs under `python -m monai.bundle run` alone: it imports MONAI, torch and ignite,
never nvseg_bench or eval_engine, so the bundle can be swapped for an upstream copy.
"""
