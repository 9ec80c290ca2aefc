"""Trusted mode's parts: the verifier's process as the harness starts and reads it, the pack digests
that decide whether a kept verdict still stands, and the broker keeping the verdict with the cached
run. The verifier's own checks are tested in tests/verifier/test_run_trusted.py; whole sessions with
the real verifier on a stored pack in test_harness_sessions.py."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from nvseg_bench.harness import trust as trust_module
from nvseg_bench.harness.broker import RunBroker
from nvseg_bench.harness.cache import DigestMemo, DirCache, RunStore
from nvseg_bench.harness.gates import check_gate
from nvseg_bench.harness.options import HarnessOptions
from nvseg_bench.harness.runs import RunEvidence
from nvseg_bench.harness.trust import Trust, TrustedInputs, verify_pack, pack_digests, run_verifier

from ..harness_util import seed_entry
from ..helpers import FIXTURE, PACKS, materialize_pack, tree_digest

FINETUNED = "checkpoints/model_finetune.pt"


@pytest.fixture()
def pack(tmp_path) -> Path:
    return materialize_pack("smoke", tmp_path / "smoke-run")


@pytest.fixture()
def out(tmp_path) -> Path:
    return tmp_path / "harness-trust"


# the stored pack's own (tiny) pretrained checkpoint, outside the copy: what its run was given
GIVEN = TrustedInputs(FIXTURE, None, PACKS / "smoke" / "pretrained.pt")


@pytest.fixture()
def fake_verifier(monkeypatch) -> list[Path]:
    """Stands in for the verifier process: records each call and leaves a passed summary."""
    calls: list[Path] = []

    def verify(pack: Path, out: Path, given: TrustedInputs) -> Trust:
        calls.append(pack)
        out.mkdir(parents=True, exist_ok=True)
        (out / "trust_summary.json").write_text(json.dumps({"verdict": "passed", "findings": []}))
        return Trust("passed", summary=str(out / "trust_summary.json"))
    monkeypatch.setattr(trust_module, "run_verifier", verify)
    return calls


def swap_checkpoint(pack: Path) -> None:
    shutil.copyfile(pack / "pretrained.pt", pack / FINETUNED)


def test_a_pack_the_verifier_cannot_read_is_an_error_verdict_that_says_why(tmp_path, out):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "output.json").write_text("{not json")
    trust = run_verifier(tmp_path / "bad", out, TrustedInputs())
    assert trust.verdict == "error" and "exited 2" in trust.failed[0] and "not valid JSON" in trust.failed[0]


def test_the_gates_section_the_harness_writes_is_not_a_change_of_the_pack(pack):
    before = pack_digests(pack)
    doc = json.loads((pack / "output.json").read_text())
    (pack / "output.json").write_text(json.dumps(dict(doc, gates={"passed": 1}), indent=2))
    (pack / "trust_summary.json").write_text("{}")
    assert pack_digests(pack) == before


def test_a_kept_verdict_is_reused_while_the_pack_is_unchanged(pack, out, fake_verifier):
    first = verify_pack(pack, out, GIVEN, pack_digests(pack), None)
    again = verify_pack(pack, out, GIVEN, first.digests, first.to_json())
    assert len(fake_verifier) == 1 and again.source == "cache" and again.changed == []


def test_a_swapped_checkpoint_is_named_and_judged_again(pack, out, fake_verifier):
    at_run_end = pack_digests(pack)
    first = verify_pack(pack, out, GIVEN, at_run_end, None)
    swap_checkpoint(pack)
    again = verify_pack(pack, out, GIVEN, at_run_end, first.to_json())
    assert len(fake_verifier) == 2 and again.changed == [f"{FINETUNED} changed"]


def test_an_edit_hidden_by_touch_r_is_judged_again_not_served_from_the_memo(pack, out, fake_verifier):
    first = verify_pack(pack, out, GIVEN, pack_digests(pack), None)
    log = pack / "logs" / "finetune.log"
    stat = log.stat()
    text = log.read_text()
    log.write_text(text.replace("val_mean_dice: 0.", "val_mean_dice: 1.", 1)[: len(text)])  # same size
    os.utime(log, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # what `touch -r` does
    assert log.stat().st_size == stat.st_size and log.stat().st_mtime_ns == stat.st_mtime_ns
    again = verify_pack(pack, out, GIVEN, first.digests, first.to_json())
    assert len(fake_verifier) == 2 and again.source == "ran" and again.changed == ["logs/finetune.log changed"]


def test_the_real_verifier_writes_outside_the_pack_and_passes_the_untouched_pack(pack, out):
    before = tree_digest(pack)
    trust = run_verifier(pack, out, GIVEN)
    assert trust.verdict == "passed", trust.failed
    assert Path(trust.summary).parent == out and tree_digest(pack) == before


def test_an_eval_engine_planted_beside_the_pack_is_not_the_verifier_that_runs(pack, out, monkeypatch):
    planted = pack.parent / "eval_engine"
    planted.mkdir()
    (planted / "__init__.py").write_text("")
    (planted / "run_trusted.py").write_text(
        "import json, sys, pathlib\nout = pathlib.Path(sys.argv[sys.argv.index('--out') + 1])\n"
        "out.mkdir(parents=True, exist_ok=True)\n"
        "(out / 'trust_summary.json').write_text(json.dumps({'verdict': 'passed', 'findings': []}))\n")
    monkeypatch.chdir(pack.parent)
    monkeypatch.setenv("PYTHONPATH", str(pack.parent))
    edit = json.loads((pack / "output.json").read_text())
    edit["output"]["recommended_ckpt"] = edit["output"]["pretrained_ckpt"]  # against the keep rule
    (pack / "output.json").write_text(json.dumps(edit))
    trust = run_verifier(pack, out, GIVEN)
    assert trust.verdict == "failed" and any(f.startswith("decision:") for f in trust.failed)


def test_a_verifier_output_folder_inside_the_pack_is_refused(pack):
    trust = run_verifier(pack, pack / "audit", GIVEN)
    assert trust.verdict == "error" and "inside the audited pack" in trust.failed[0]
    assert not (pack / "audit").exists()


def _broker(tmp_path: Path, session: str, **options) -> RunBroker:
    cache = DirCache(tmp_path / "project" / ".pytest_cache")
    return RunBroker(HarnessOptions(trusted=True, **options), RunStore(cache, None), DigestMemo(cache), session, 0, print)


def test_a_cached_run_edited_after_it_ran_fails_the_trusted_gate_in_the_next_session(pack, tmp_path, fake_verifier):
    seed_entry(tmp_path / "project", pack, tmp_path)
    first = _broker(tmp_path, "session one").get("smoke")
    assert first.source == "cache" and check_gate("trusted", first).status == "passed"
    doc = json.loads((pack / "output.json").read_text())
    doc["output"]["recommended_ckpt"] = doc["output"]["pretrained_ckpt"]
    (pack / "output.json").write_text(json.dumps(doc))
    second = _broker(tmp_path, "session two").get("smoke")
    verdict = check_gate("trusted", second)
    assert second.source == "cache" and verdict.status == "failed" and "output.json changed" in verdict.message


def test_trusted_only_judges_the_pack_without_writing_into_it(pack, tmp_path):
    before = tree_digest(pack)
    run = _broker(tmp_path, "session", trusted_only=pack).get("smoke")
    assert run.trust.verdict == "passed", run.trust.failed
    assert tree_digest(pack) == before and pack not in Path(run.trust.summary).parents


def test_the_verifier_is_started_isolated_with_the_inputs_the_run_used(pack, out):
    command = trust_module.verifier_command(pack, out, GIVEN)
    assert command[1:3] == ["-I", "-c"] and command[4] == str(trust_module.ENGINE_HOME)
    assert command[command.index("--dataset-dir") + 1] == str(FIXTURE)
    assert command[command.index("--pretrained-ckpt") + 1] == str(GIVEN.pretrained_ckpt)
    assert command[command.index("--out") + 1] == str(out.resolve())


def test_an_unverified_verdict_fails_the_trusted_gate(pack):
    run = RunEvidence("smoke", pack, 0, 1.0, [], "pack", "", "", None, None,
                      trust=Trust("unverified", ["formal_dice.eval_finetuned: the labels are not reachable"]))
    verdict = check_gate("trusted", run)
    assert verdict.status == "failed" and "unverified" in verdict.message
