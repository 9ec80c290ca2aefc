"""Hands out runs: from this process's memory, from the cache, or by running the CLI once.

Under a per-run file lock the broker looks up the cached entry; a matching key is a hit (unless
--nvseg-rerun, which still shares a run made earlier in this same session with other xdist
workers). A miss runs the CLI, with the GPU lock held when GPUs are allowed, and stores the entry.
Only complete runs (exit 0, or 4: sanity references missed) are reused by later sessions; a
crashed or refused run is re-tried next session. Each entry keeps the digests of the pack its run
left; in trusted mode the verifier's verdict is kept beside them (see trust.py). With
--nvseg-trusted-only nothing runs: the one pack given is served as the run its plan names.
"""
from __future__ import annotations

import json
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable

from nvseg_bench.campaign.seeds import evidence_dir
from nvseg_bench.harness.cache import DigestMemo, RunStore, cache_key, changed_parts, fingerprint, stat_listing
from nvseg_bench.harness.options import HarnessOptions
from nvseg_bench.harness.runs import (SMOKE_FIXTURE, RunEvidence, RunSkipped, RunSpec, build_spec, pack_run_name, run_cli,
                                     skip_reason)
from nvseg_bench.harness.trust import Trust, TrustedInputs, verify_pack, pack_digests

REUSABLE_EXIT_CODES = (0, 4)


class RunBroker:
    def __init__(self, opts: HarnessOptions, store: RunStore, memo: DigestMemo, session: str,
                 gpu_count: int, say: Callable[[str], None]) -> None:
        self.opts, self.store, self.memo, self.session = opts, store, memo, session
        self.gpu_count, self.say = gpu_count, say
        self.held: dict[str, RunEvidence | RunSkipped] = {}

    def get(self, name: str) -> RunEvidence:
        if name not in self.held:
            try:
                self.held[name] = self._obtain(name)
            except RunSkipped as skipped:
                self.held[name] = skipped
        found = self.held[name]
        if isinstance(found, RunSkipped):
            raise found
        return found

    def _obtain(self, name: str) -> RunEvidence:
        if self.opts.trusted_only is not None:
            return self._as_found(name, self.opts.trusted_only)
        reason = skip_reason(name, self.opts, self.gpu_count)
        if reason:
            raise RunSkipped(reason)
        spec = build_spec(name, self.opts)
        with self.store.lock(name):
            parts = fingerprint(spec.args, spec.inputs, spec.uses_gpu, self.memo)
            key = cache_key(parts)
            entry = self.store.load(name)
            hit = self._usable(entry, key)
            if not hit:
                entry, hit = self._run(spec, key, parts, entry, self._why(entry, parts)), "ran"
            if self.opts.trusted:
                self._trust(entry, TrustedInputs.from_spec(spec.inputs, folds=self.opts.folds is not None))
            return RunEvidence.from_entry(entry, hit)

    def trust_dir(self, name: str) -> Path:
        """Where the verifier writes its summary of a run: the harness's own folder, never the pack."""
        return self.store.home / "trust" / name

    def _trust(self, entry: dict[str, Any], given: TrustedInputs) -> None:
        """Judge the run's pack against the inputs the run used (or re-use the kept verdict); keep the
        verdict in its entry."""
        out = Path(entry["out"])
        if not (out / "output.json").is_file():
            return
        trust = verify_pack(out, self.trust_dir(entry["name"]), given, entry.get("pack"), entry.get("trust"))
        if trust.source == "ran":
            self.say(f"nvseg: the verifier judged {entry['name']}: {trust.verdict} ({trust.summary})")
            self._track_trust(out, trust)
        entry["trust"] = trust.to_json()
        self.store.save(entry["name"], entry)

    def _track_trust(self, out: Path, trust: Trust) -> None:
        """Add the verifier's summary and verdict to the run's MLflow run, when it was logged to one."""
        block = (json.loads((out / "output.json").read_text()).get("tracking") or {}).get("mlflow") or {}
        if not block.get("run_id") or not trust.summary:
            return
        from nvseg_bench.tracking.mlflow_run import TrackingFailed, add_to

        try:
            add_to(block, {"trust_summary.json": Path(trust.summary)}, {"nvseg.trust_verdict": trust.verdict})
        except TrackingFailed as exc:
            self.say(f"nvseg: warning: {exc}; the verdict stands in {trust.summary}")

    def _as_found(self, name: str, pack: Path) -> RunEvidence:
        doc = json.loads((pack / "output.json").read_text())
        found = pack_run_name(doc)
        if name != found:
            raise RunSkipped(f"--nvseg-trusted-only judges the {found} run in {pack}; this is the {name} run")
        run = RunEvidence.from_pack(name, pack, doc)
        given = self._as_found_inputs(name)
        with self.store.lock(name):  # xdist workers share one verdict
            kept = self.store.load(f"{name}-as-found") or {}
            run.trust = verify_pack(pack, self.trust_dir(f"{name}-as-found"), given, None,
                                   kept.get("trust") if kept.get("out") == str(pack) else None)
            self.store.save(f"{name}-as-found", {"out": str(pack), "trust": run.trust.to_json()})
        if run.trust.source == "ran":
            self.say(f"nvseg: the verifier judged the pack {pack}: {run.trust.verdict}")
        return run

    def _as_found_inputs(self, name: str) -> TrustedInputs:
        """A pack the harness did not run: the dataset its options name for this run; the weights only
        where the user named them (else the verifier reads the pack's, and says so)."""
        dataset = {"smoke": SMOKE_FIXTURE, "sanity": self.opts.task06, "user": self.opts.dataset}.get(name)
        if dataset is None or not dataset.is_dir():
            return TrustedInputs(pretrained_ckpt=self.opts.pretrained_ckpt)
        datalist = self.opts.datalist if name == "user" and self.opts.folds is None else None
        return TrustedInputs(dataset, datalist, self.opts.pretrained_ckpt)

    def _usable(self, entry: dict[str, Any] | None, key: str) -> str | None:
        """'shared' or 'cache' when the entry can stand for this run, else None."""
        if not entry or entry.get("key") != key:
            return None
        if not (Path(entry["out"]) / "output.json").is_file():
            return None
        if entry.get("session") == self.session:
            return "shared"
        if self.opts.rerun or entry.get("returncode") not in REUSABLE_EXIT_CODES:
            return None
        return "cache"

    def _why(self, entry: dict[str, Any] | None, parts: dict[str, str]) -> str:
        if entry is None:
            return "nothing cached"
        changed = changed_parts(entry.get("parts", {}), parts)
        if changed:
            return "changed since the cached run: " + ", ".join(changed)
        if self.opts.rerun:
            return "--nvseg-rerun"
        return f"the cached run exited {entry.get('returncode')}"

    def _run(self, spec: RunSpec, key: str, parts: dict[str, str], old: dict[str, Any] | None,
             why: str) -> dict[str, Any]:
        out = self.store.fresh_dir(spec.name, key)
        out.parent.mkdir(parents=True, exist_ok=True)
        self.say(f"nvseg: running {spec.name} ({why}) -> {out}")
        watched = [path for path in spec.inputs.values() if path is not None and path.exists()]
        before = stat_listing(watched)
        with self.store.device_lock() if spec.uses_gpu else nullcontext():
            code, seconds, tail = run_cli(spec, out, self.say)
        out = evidence_dir(out)  # a seed sweep (--nvseg-seeds): its representative seed's folder
        untouched = stat_listing(watched) == before
        entry = {"name": spec.name, "out": str(out), "returncode": code, "wall_seconds": round(seconds, 2),
                 "console_tail": tail, "key": key, "parts": parts, "session": self.session,
                 "finished_at": time.strftime("%Y-%m-%d %H:%M:%S"), "inputs_unchanged": untouched,
                 "reference": spec.reference, "args": spec.args,
                 "executions": int((old or {}).get("executions", 0)) + 1,
                 "pack": pack_digests(out) if out.is_dir() else None}
        self.store.save(spec.name, entry)
        if old and old.get("out") and old["out"] != str(out):
            self.store.forget_dir(Path(old["out"]))
        self.say(f"nvseg: {spec.name} exited {code} after {seconds:.1f} s")
        return entry
