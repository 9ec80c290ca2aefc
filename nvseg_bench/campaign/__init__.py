"""Campaigns: runs made of runs. `--seeds` (seeds.py) and `--folds` (folds.py) each run one shared
pretrained evaluation and then member runs (members.py) that are complete evidence packs of their own;
pooling the members' figures is evidence/pool.py's and the CV's top-level output.json output/pooled.py's.
Nothing here parses arguments or prints: the CLI passes a Show."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nvseg_bench.campaign.folds import CvShow
    from nvseg_bench.campaign.seeds import SweepShow
    from nvseg_bench.inputs.request import Request


def run_campaign(req: Request, show: CvShow | SweepShow) -> int:
    """`--folds` or `--seeds`: the campaign the request asks for (its members side by side with --parallel,
    or submitted with --slurm-array); its exit code. The members' modules load here, after parsing, so
    --help stays fast."""
    from nvseg_bench.errors import ArgumentError

    if not (req.folds or req.seeds):
        raise ArgumentError("--parallel and --slurm-array run the members of a campaign side by side; there is none.",
                            fix=["Add --folds all (cross-validation) or --seeds 0,1,2 (a seed sweep), or drop the flag."])
    if req.parallel and req.slurm_array:
        raise ArgumentError("--parallel and --slurm-array both say where the members run; give one.",
                            fix=["--parallel N on this machine, or --slurm-array to let SLURM place them."])
    if req.slurm_array:
        from nvseg_bench.campaign.slurm_array import submit

        return submit(req, show)
    if req.folds:
        from nvseg_bench.campaign.folds import run_cv

        return run_cv(req, show)  # type: ignore[arg-type]
    from nvseg_bench.campaign.seeds import run_sweep

    return run_sweep(req, show)  # type: ignore[arg-type]
