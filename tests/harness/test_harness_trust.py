"""Trusted mode's parts: the verifier's process as the harness starts and reads it, the pack digests
that decide whether a kept verdict still stands, and the broker keeping the verdict with the cached
run. The verifier's own checks are tested in tests/verifier/test_run_trusted.py; whole sessions with
the real verifier on a stored pack in test_harness_sessions.py."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nvseg_bench.harness import trust as trust_module
from nvseg_bench.harness.broker import RunBroker
from nvseg_bench.harness.cache import DigestMemo, DirCache, RunStore
from nvseg_bench.harness.gates import judge
from nvseg_bench.harness.options import HarnessOptions
from nvseg_bench.harness.trust import Trust, judge_pack, pack_digests, run_verifier

from ..harness_util import seed_entry
from ..helpers import materialize_pack

FINETUNED = "checkpoints/model_finetune.pt"


@pytest.fixture()
def pack(tmp_path) -> Path:
    return materialize_pack("smoke", tmp_path / "smoke-run")


@pytest.fixture()
def memo(tmp_path) -> DigestMemo:
    return DigestMemo(DirCache(tmp_path / "memo"))


@pytest.fixture()
def fake_verifier(monkeypatch) -> list[Path]:
    """Stands in for the verifier process: records each call and leaves a passed summary."""
    calls: list[Path] = []

    def verify(pack: Path) -> Trust:
        calls.append(pack)
        (pack / "trust_summary.json").write_text(json.dumps({"verdict": "passed", "findings": []}))
        return Trust("passed", summary=str(pack / "trust_summary.json"))
    monkeypatch.setattr(trust_module, "run_verifier", verify)
    return calls


def swap_checkpoint(pack: Path) -> None:
    shutil.copyfile(pack / "pretrained.pt", pack / FINETUNED)


def test_a_pack_the_verifier_cannot_read_is_an_error_verdict_that_says_why(tmp_path):
    (tmp_path / "output.json").write_text("{not json")
    trust = run_verifier(tmp_path)
    assert trust.verdict == "error" and "exited 2" in trust.failed[0] and "not valid JSON" in trust.failed[0]


def test_the_gates_section_the_harness_writes_is_not_a_change_of_the_pack(pack, memo):
    before = pack_digests(pack, memo)
    doc = json.loads((pack / "output.json").read_text())
    (pack / "output.json").write_text(json.dumps(dict(doc, gates={"passed": 1}), indent=2))
    (pack / "trust_summary.json").write_text("{}")
    assert pack_digests(pack, memo) == before


def test_a_kept_verdict_is_reused_while_the_pack_is_unchanged(pack, memo, fake_verifier):
    first = judge_pack(pack, memo, pack_digests(pack, memo), None)
    again = judge_pack(pack, memo, first.digests, first.to_json())
    assert len(fake_verifier) == 1 and again.source == "cache" and again.changed == []


def test_a_swapped_checkpoint_is_named_and_judged_again(pack, memo, fake_verifier):
    at_run_end = pack_digests(pack, memo)
    first = judge_pack(pack, memo, at_run_end, None)
    swap_checkpoint(pack)
    again = judge_pack(pack, memo, at_run_end, first.to_json())
    assert len(fake_verifier) == 2 and again.changed == [f"{FINETUNED} changed"]


def _broker(tmp_path: Path, session: str) -> RunBroker:
    cache = DirCache(tmp_path / "project" / ".pytest_cache")
    return RunBroker(HarnessOptions(trusted=True), RunStore(cache, None), DigestMemo(cache), session, 0, print)


def test_a_cached_run_edited_after_it_ran_fails_the_trusted_gate_in_the_next_session(pack, tmp_path, fake_verifier):
    seed_entry(tmp_path / "project", pack, tmp_path)
    first = _broker(tmp_path, "session one").get("smoke")
    assert first.source == "cache" and judge("trusted", first).status == "passed"
    doc = json.loads((pack / "output.json").read_text())
    doc["output"]["recommended_ckpt"] = doc["output"]["pretrained_ckpt"]
    (pack / "output.json").write_text(json.dumps(doc))
    second = _broker(tmp_path, "session two").get("smoke")
    verdict = judge("trusted", second)
    assert second.source == "cache" and verdict.status == "failed" and "output.json changed" in verdict.message
