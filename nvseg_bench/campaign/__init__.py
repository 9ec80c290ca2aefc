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
    """`--folds` or `--seeds`: the campaign the request asks for; its exit code. The members' modules load
    here, after parsing, so --help stays fast."""
    if req.folds:
        from nvseg_bench.campaign.folds import run_cv

        return run_cv(req, show)  # type: ignore[arg-type]
    from nvseg_bench.campaign.seeds import run_sweep

    return run_sweep(req, show)  # type: ignore[arg-type]
