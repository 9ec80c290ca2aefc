"""SLURM: under `srun`, the multi-node values torchrun needs come from the job's own variables; and the sbatch
arguments of --slurm-array (a campaign's members as a job array, the pooling as a job that waits for it).

One `srun --ntasks-per-node=1 nvseg-finetune ...` starts the same command on every node; each then
takes --nnodes from SLURM_NNODES, --node-rank from SLURM_NODEID and meets the others at the first
host of SLURM_JOB_NODELIST (torchrun's c10d rendezvous port). Values given on the command line win.
Pure functions on the environment; no torch, no monai.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Mapping

from nvseg_bench.errors import ArgumentError
from nvseg_bench.inputs.request import Request

RDZV_PORT = 29400  # torchrun's default c10d rendezvous port
_RANGE = re.compile(r"^(\d+)(?:-\d+)?$")
_BRACKET = re.compile(r"\[([^\]]*)\]")


@dataclass(frozen=True)
class SlurmNodes:
    nnodes: int
    node_rank: int
    endpoint: str


def first_host(nodelist: str) -> str:
    """The first host of a SLURM hostlist: 'gpu[07-09,12],cpu1' -> 'gpu07'; 'a1,a2' -> 'a1'; each bracket
    group gives its first value: 'rack[3-4]-n[1-2]' -> 'rack3-n1'."""
    depth, end = 0, len(nodelist)
    for i, char in enumerate(nodelist):  # the first item ends at a comma outside brackets
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            end = i
            break
    item = nodelist[:end].strip()
    host = _BRACKET.sub(lambda m: _first_of(m.group(1), nodelist), item)  # zero padding kept: '[001-4]' -> '001'
    if not host or "[" in host or "]" in host:
        raise ValueError(f"cannot read the hostlist {nodelist!r}")
    return host


def _first_of(ranges: str, nodelist: str) -> str:
    match = _RANGE.match(ranges.split(",")[0].strip())
    if match is None:
        raise ValueError(f"cannot read the hostlist {nodelist!r}")
    return match.group(1)


def from_env(env: Mapping[str, str]) -> SlurmNodes | None:
    """The job's nodes when this process is a step of a multi-node SLURM job (srun), else None."""
    if "SLURM_STEP_ID" not in env and "SLURM_STEPID" not in env:
        return None  # the batch script itself: srun starts the per-node commands
    try:
        nnodes = int(env.get("SLURM_NNODES") or env.get("SLURM_JOB_NUM_NODES") or 1)
        if nnodes < 2:
            return None
        return SlurmNodes(nnodes, int(env["SLURM_NODEID"]), f"{first_host(env['SLURM_JOB_NODELIST'])}:{RDZV_PORT}")
    except (KeyError, ValueError) as exc:
        raise ArgumentError(
            "this looks like a multi-node SLURM step, but its variables do not say where this node belongs.",
            evidence=[f"SLURM_NNODES={env.get('SLURM_NNODES')!r}, SLURM_NODEID={env.get('SLURM_NODEID')!r}, "
                      f"SLURM_JOB_NODELIST={env.get('SLURM_JOB_NODELIST')!r} ({type(exc).__name__}: {exc})"],
            fix=["Pass --nnodes, --node-rank and --rdzv-endpoint HOST:PORT yourself."]) from None


def apply(req: Request, env: Mapping[str, str]) -> tuple[Request, str | None]:
    """The request with the SLURM defaults filled in where the caller gave none, and the plan's line."""
    nodes = from_env(env)
    if nodes is None:
        return req, None
    filled = {"nnodes": nodes.nnodes, "node_rank": nodes.node_rank, "rdzv_endpoint": nodes.endpoint}
    taken = {key: value for key, value in filled.items() if getattr(req, key) is None}
    if not taken:
        return req, None
    named = ", ".join(f"--{key.replace('_', '-')} {value}" for key, value in taken.items())
    return replace(req, **taken), (f"slurm: {named} from SLURM_NNODES, SLURM_NODEID and the first host of "
                                   "SLURM_JOB_NODELIST (this is one srun step; flags you give win)")


# --slurm-array (campaign/slurm_array.py): the members as one job array, the pooling as a job after it.
# afterany, not afterok: a failed member still writes its output.json (status failed), so the pooling runs,
# names it and keeps the others; with afterok one failed fold would leave the campaign with no pooled record.
POOL_DEPENDENCY = "afterany"


def array_args(count: int, script: str, log_dir: str, name: str) -> list[str]:
    """sbatch's arguments for the members' job array: task i runs member i of the script."""
    return ["sbatch", "--parsable", f"--array=0-{count - 1}", f"--job-name={name}-members",
            f"--output={log_dir}/member-%a.log", script]


def pool_args(array_id: str, command: str, log_dir: str, name: str) -> list[str]:
    """sbatch's arguments for the pooling job, which starts once every task of the array has ended."""
    return ["sbatch", "--parsable", f"--dependency={POOL_DEPENDENCY}:{array_id}", f"--job-name={name}-pool",
            f"--output={log_dir}/pool.log", f"--wrap={command}"]


def job_id(stdout: str) -> str | None:
    """The job id `sbatch --parsable` prints ('123' or '123;cluster'), or None."""
    first = stdout.strip().splitlines()[0] if stdout.strip() else ""
    found = first.split(";")[0].strip()
    return found if found.isdigit() else None
