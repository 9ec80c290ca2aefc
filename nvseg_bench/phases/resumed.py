"""What the phase loop calls when a run continues a stopped one (`--resume`): a phase that run finished, kept
as its result; the stopped finetune's log set aside before the finetune runs again; and the finetune's trace
over every log it wrote. Everything else about resuming is stage/resume.py's.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from nvseg_bench.paths import phase_log
from nvseg_bench.phases.logparse import LogFacts, merge_resumed, parse_lines
from nvseg_bench.phases.runner import PhaseResult
from nvseg_bench.phase_names import FINETUNE
from nvseg_bench.prepared import Prepared
from nvseg_bench.stage.resume import ResumePoint, earlier_logs, finished, set_aside_log


def earlier_phase(point: ResumePoint, out_dir: Path, name: str, command: list[str]) -> PhaseResult | None:
    """A phase the stopped run finished, as its result: kept, not run again."""
    log = phase_log(out_dir, name)
    if not finished(point.stopped, out_dir, name) or not log.is_file():
        return None
    runtime = point.stopped.get("runtime") or {}
    return PhaseResult(name=name, command=command, log_path=str(log), return_code=0,
                       seconds=(runtime.get("phase_seconds") or {}).get(name) or 0.0,
                       peak_gpu_mb=(runtime.get("phase_peak_gpu_mb") or {}).get(name),
                       peak_rss_mb=(runtime.get("phase_peak_rss_mb") or {}).get(name),
                       facts=parse_lines(log.read_text(errors="replace").splitlines()),
                       reused_from="the stopped run (--resume)")


def merged_facts(out_dir: Path, current: LogFacts) -> LogFacts:
    """The finetune's record over every log it wrote, stopped ones first: each epoch once."""
    earlier = [parse_lines(p.read_text(errors="replace").splitlines()) for p in earlier_logs(out_dir / "logs")]
    return merge_resumed([*earlier, current])


def before_phase(p: Prepared, name: str, command: list[str]) -> PhaseResult | None:
    """For a resumed run: the phase's result kept from the stopped run, else None (to run it); before the
    finetune runs again, the stopped finetune's log is set aside (its epochs still count)."""
    if p.resume_point is None:
        return None
    earlier = earlier_phase(p.resume_point, p.out_dir, name, command)
    if earlier is None and name == FINETUNE:
        set_aside_log(phase_log(p.out_dir, name))
    return earlier


def with_trace(p: Prepared, results: dict[str, PhaseResult]) -> dict[str, PhaseResult]:
    """For a resumed run: the finetune's result with the trace of every epoch, each once."""
    if p.resume_point is None or FINETUNE not in results:
        return results
    return results | {FINETUNE: replace(results[FINETUNE], facts=merged_facts(p.out_dir, results[FINETUNE].facts))}
