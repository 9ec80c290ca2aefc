"""Campaign members elsewhere: --parallel's shares of the machine, --slurm-array's submission through a
stand-in sbatch that records its arguments (no phase runs here), and `nvseg-finetune pool OUT`."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from nvseg_bench.campaign import parallel, slurm_array
from nvseg_bench.cli import build_parser, main, to_request
from nvseg_bench.errors import ArgumentError
from nvseg_bench.planning import slurm

from ..helpers import FIXTURE, PACKS

SBATCH = """#!/bin/sh
# a stand-in sbatch: records its arguments, one JSON list a line, and answers the next job id
python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@" >> "$SBATCH_RECORD"
echo $(( 100 + $(wc -l < "$SBATCH_RECORD") ))
"""


@pytest.fixture
def sbatch(tmp_path, monkeypatch) -> Path:
    """A stand-in sbatch first on PATH; the file its calls are recorded in."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(SBATCH)
    (bin_dir / "sbatch").chmod(0o755)
    record = tmp_path / "sbatch-calls.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SBATCH_RECORD", str(record))
    return record


def _calls(record: Path) -> list[list[str]]:
    return [json.loads(line) for line in record.read_text().splitlines()]


def test_cpu_shares_split_the_cores_and_gpu_shares_are_disjoint():
    assert parallel.shares(2, {"CUDA_VISIBLE_DEVICES": ""}, 8) == [{"OMP_NUM_THREADS": "4", "MKL_NUM_THREADS": "4"}] * 2
    assert parallel.shares(3, {"CUDA_VISIBLE_DEVICES": ""}, 2)[0]["OMP_NUM_THREADS"] == "1"
    assert parallel.shares(2, {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}, 8) == [{"CUDA_VISIBLE_DEVICES": "0,1"},
                                                                          {"CUDA_VISIBLE_DEVICES": "2,3"}]
    with pytest.raises(ArgumentError, match="--parallel 3 needs a GPU per member"):
        parallel.shares(3, {"CUDA_VISIBLE_DEVICES": "4,5"}, 8)


def _ok(value: int) -> str:
    return f"member {value}"


def _boom(value: int) -> str:
    raise ValueError(f"member {value} broke")


def _timed(value: int) -> tuple[str, float, float]:
    """A member that reports its share and when it ran."""
    import time

    started = time.monotonic()
    time.sleep(1.0)
    return os.environ["OMP_NUM_THREADS"], started, time.monotonic()


def test_two_members_run_at_once_each_with_its_share_of_the_cores(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    found = parallel.run_members({"a": (_timed, (1,)), "b": (_timed, (2,))}, 2, lambda *_: None,
                                 {"CUDA_VISIBLE_DEVICES": ""})
    (share_a, start_a, end_a), (share_b, start_b, end_b) = found["a"], found["b"]
    assert share_a == share_b == "1"  # two cores, two members: one thread each
    assert start_a < end_b and start_b < end_a  # side by side, not one after the other


def test_a_failed_member_names_itself_and_the_others_are_kept():
    done = []
    found = parallel.run_members({"a": (_ok, (1,)), "b": (_boom, (2,)), "c": (_ok, (3,))}, 2,
                                 lambda name, result: done.append(name), {"CUDA_VISIBLE_DEVICES": ""})
    assert found == {"a": "member 1", "b": "ValueError: member 2 broke", "c": "member 3"}
    assert sorted(done) == ["a", "b", "c"]


def test_a_member_keeps_every_flag_but_the_campaigns():
    line = ("nvseg-finetune data --smoke --folds all --parallel=2 --output-dir /o --datalist d.json "
            "--slurm-array --epochs 1 --save-to s")
    assert slurm_array.member_base(line) == ["data", "--smoke", "--epochs", "1"]


def test_sbatch_arguments_and_its_answers():
    assert slurm.array_args(5, "/o/slurm/members.sh", "/o/slurm", "nvseg")[:3] == ["sbatch", "--parsable", "--array=0-4"]
    assert "--dependency=afterany:77" in slurm.pool_args("77", "x pool /o", "/o/slurm", "nvseg")
    assert slurm.job_id("123;cluster\n") == "123" and slurm.job_id("Submitted batch job\n") is None


def test_a_cv_is_submitted_as_an_array_and_a_dependent_pooling_job(sbatch, tmp_path, capsys):
    out = tmp_path / "cv"
    code = main([str(FIXTURE), "--smoke", "--epochs", "1", "--folds", "all", "--output-dir", str(out), "--slurm-array",
                 "--cv-checkpoint", "best"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert json.loads((out / "campaign.json").read_text())["cv_checkpoint"] == "best"
    array, pooling = _calls(sbatch)
    assert "--array=0-4" in array and array[-1] == str(out / "slurm" / "members.sh")
    assert "--dependency=afterany:101" in pooling
    assert pooling[-1].startswith("--wrap=") and pooling[-1].endswith(f"pool {out}")
    assert "job array 101" in printed and "as job 102" in printed
    script = (out / "slurm" / "members.sh").read_text()
    for fold in range(5):
        assert f"--datalist {out}/fold-{fold}/datalist.json --output-dir {out}/fold-{fold}" in script
    runs = [line for line in script.splitlines() if " exec " in line]
    assert len(runs) == 5 and not any("--folds" in r or "--slurm-array" in r for r in runs)
    assert not list(out.rglob("logs/*.log")) and not (out / "eval_pretrained").exists()  # no phase ran here


def test_a_cv_on_last_epochs_is_refused_as_an_array_before_anything_is_submitted(sbatch, tmp_path, capsys):
    # each array task is a run of its own, which keeps only its best epoch: nothing to pool on last epochs
    out = tmp_path / "cv"
    code = main([str(FIXTURE), "--smoke", "--epochs", "1", "--folds", "all", "--output-dir", str(out), "--slurm-array"])
    assert code == 2 and "--cv-checkpoint best" in capsys.readouterr().err
    assert not sbatch.exists() and not (out / "slurm").exists()


def test_a_sweep_is_submitted_and_pooled_by_hand_from_its_members_packs(sbatch, tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main([str(FIXTURE), "--smoke", "--seeds", "0,1", "--output-dir", str(out), "--slurm-array"]) == 0
    assert "--array=0-1" in _calls(sbatch)[0]
    assert "--seed 1 --output-dir" in (out / "slurm" / "members.sh").read_text()
    assert main(["pool", str(out)]) == 2
    assert "seed 0 has no finished pack to pool" in capsys.readouterr().err
    for seed in (0, 1):  # a stored smoke pack stands for each member's finished run
        shutil.copy(PACKS / "smoke" / "output.json", out / f"seed-{seed}" / "output.json")
    assert main(["pool", str(out)]) == 0
    sweep = json.loads((out / "sweep.json").read_text())
    assert sweep["seeds"] == [0, 1] and sweep["formal_gain"]["n"] == 2


def test_parallel_and_slurm_array_need_a_campaign_and_each_other_not(tmp_path, capsys):
    base = [str(FIXTURE), "--smoke", "--output-dir", str(tmp_path / "o")]
    assert main([*base, "--parallel", "2"]) == 2
    assert "there is none" in capsys.readouterr().err
    assert main([*base, "--seeds", "0,1", "--parallel", "2", "--slurm-array"]) == 2
    assert "give one" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_slurm_array_without_sbatch_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    argv = [str(FIXTURE), "--smoke", "--seeds", "0,1", "--output-dir", str(tmp_path / "o"), "--slurm-array"]
    assert to_request(build_parser().parse_args(argv), argv).slurm_array
    assert main(argv) == 2
    assert "sbatch, which is not on PATH" in capsys.readouterr().err
