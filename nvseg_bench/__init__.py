"""nvseg-bench: finetune NV-Segment-CT (VISTA3D) through its MONAI bundle and prove what changed.

The package never trains or infers in its own process; it plans, stages configs, runs
`python -m monai.bundle run` phases, and turns their evidence into a schema-checked output.json.
Importing it must stay cheap: no torch, no monai at module level.
"""
__version__ = "0.1.0"
PROG = "nvseg-finetune"  # the command name, in every message the tool prints
