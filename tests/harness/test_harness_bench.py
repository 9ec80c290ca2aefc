"""What the harness itself costs, beside the finetune it wraps: `pytest --benchmark-only`.

Cache hit (key over every input + lookup), evidence parsing with every gate judged, checkpoint
comparison (the micro model and a 20M-parameter pair), and report writing with both plots.
Deselected from the default run by the repo's conftest.py.
"""
from __future__ import annotations

import pytest

from nvseg_bench.model.checkpoints import compare_checkpoints
from nvseg_bench.harness.broker import RunBroker
from nvseg_bench.harness.cache import DigestMemo, RunStore
from nvseg_bench.harness.gates import GATES, gate_names, check_gate
from nvseg_bench.harness.ledger import GateOutcome, Ledger, RunRecord
from nvseg_bench.harness.options import HarnessOptions
from nvseg_bench.harness.report import write_reports
from nvseg_bench.harness.runs import RunEvidence


def test_bench_cache_hit(benchmark, smoke_run, pytestconfig):
    def hit() -> RunEvidence:
        broker = RunBroker(HarnessOptions(), RunStore(pytestconfig.cache, None), DigestMemo(pytestconfig.cache),
                           "a later session", 0, print)
        return broker.get("smoke")

    assert benchmark(hit).source == "cache"


def test_bench_evidence_parsing_and_every_gate(benchmark, smoke_run, nvseg_runs):
    entry = nvseg_runs.store.load("smoke")

    def parse_and_judge() -> dict[str, str]:
        run = RunEvidence.from_entry(entry, "cache")
        return {gate: check_gate(gate, run).status for gate in gate_names(trusted=False)}

    assert set(benchmark(parse_and_judge).values()) == {"passed"}


def test_bench_checkpoint_comparison_micro_model(benchmark, smoke_run):
    out = smoke_run.doc["output"]
    result = benchmark(compare_checkpoints, out["finetuned_ckpt"], out["pretrained_ckpt"])
    assert result["n_changed"] > 0


def test_bench_checkpoint_comparison_20m_parameters(benchmark, tmp_path):
    import torch

    generator = torch.Generator().manual_seed(0)
    state = {f"block{i}.weight": torch.randn(1000, 1000, generator=generator) for i in range(20)}
    torch.save(state, tmp_path / "a.pt")
    state["block7.weight"][0, 0] += 1
    torch.save(state, tmp_path / "b.pt")
    result = benchmark.pedantic(compare_checkpoints, args=(tmp_path / "b.pt", tmp_path / "a.pt"), rounds=3)
    assert result["n_changed"] == 1


@pytest.mark.parametrize("plots", [True, False], ids=["with_plots", "tables_only"])
def test_bench_report_writing(benchmark, smoke_run, tmp_path, monkeypatch, plots):
    import sys

    if not plots:
        monkeypatch.setitem(sys.modules, "matplotlib", None)
    ledger = Ledger()
    gates = {gate: GateOutcome("passed", "ok", 0.0) for gate in GATES}
    ledger.runs["smoke"] = RunRecord("smoke", str(smoke_run.out), {"cache"}, gates=gates)
    paths = benchmark(write_reports, ledger, tmp_path)
    assert (tmp_path / "report.html").stat().st_size > 0 and len(paths) == 2
