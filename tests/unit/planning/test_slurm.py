"""Under srun, --nnodes, --node-rank and the rendezvous endpoint default from the job's variables."""
from __future__ import annotations

import json

import pytest

from nvseg_bench.cli import main
from nvseg_bench.errors import ArgumentError
from nvseg_bench.planning.slurm import first_host, from_env

from ...helpers import FIXTURE

STEP = {"SLURM_JOB_ID": "77", "SLURM_STEP_ID": "0", "SLURM_NNODES": "2", "SLURM_NODEID": "1",
        "SLURM_JOB_NODELIST": "gpu[07-08]"}


@pytest.mark.parametrize("nodelist, host", [
    ("gpu[07-08]", "gpu07"),
    ("node[001-004,010]", "node001"),
    ("a1,a2", "a1"),
    ("rack[3-4]-n[1-2],b9", "rack3-n1"),
    ("dgx-h100-[12,14]", "dgx-h100-12"),
    ("single", "single"),
])
def test_the_first_host_of_a_slurm_hostlist(nodelist, host):
    assert first_host(nodelist) == host


def test_a_multi_node_srun_step_gives_nodes_rank_and_endpoint():
    nodes = from_env(STEP)
    assert nodes is not None and (nodes.nnodes, nodes.node_rank, nodes.endpoint) == (2, 1, "gpu07:29400")


@pytest.mark.parametrize("env", [
    {k: v for k, v in STEP.items() if k != "SLURM_STEP_ID"},  # the batch script, not an srun step
    STEP | {"SLURM_NNODES": "1"},  # one node: nothing to meet
    {},
], ids=["batch script", "one node", "no slurm"])
def test_outside_a_multi_node_srun_step_nothing_is_filled(env):
    assert from_env(env) is None


def test_an_unreadable_hostlist_is_refused_naming_it():
    with pytest.raises(ArgumentError, match="cannot read the hostlist 'gpu\\[a-b\\]'"):
        from_env(STEP | {"SLURM_JOB_NODELIST": "gpu[a-b]"})


def test_a_step_without_its_node_id_is_refused_naming_the_variables():
    with pytest.raises(ArgumentError, match="SLURM_NODEID=None"):
        from_env({k: v for k, v in STEP.items() if k != "SLURM_NODEID"})


def plan_under(env: dict[str, str], tmp_path, monkeypatch, *extra: str) -> dict:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "out"
    assert main([str(FIXTURE), "--smoke", "--dry-run", "--output-dir", str(out), *extra]) == 0
    return json.loads((out / "output.json").read_text())


def test_a_dry_run_under_srun_plans_torchrun_across_the_jobs_nodes_and_says_why(tmp_path, monkeypatch):
    doc = plan_under(STEP, tmp_path, monkeypatch)
    command = doc["invocation"]["commands"]["finetune"]
    assert {"--nnodes=2", "--node_rank=1", "--rdzv_backend=c10d", "--rdzv_endpoint=gpu07:29400"} <= set(command)
    assert any(line.startswith("slurm: --nnodes 2, --node-rank 1, --rdzv-endpoint gpu07:29400 from SLURM_NNODES")
               for line in doc["plan"]["rationale"])


def test_flags_given_on_the_command_line_win_over_the_job(tmp_path, monkeypatch):
    doc = plan_under(STEP, tmp_path, monkeypatch, "--rdzv-endpoint", "head:1234")
    command = doc["invocation"]["commands"]["finetune"]
    assert "--rdzv_endpoint=head:1234" in command and "--node_rank=1" in command
