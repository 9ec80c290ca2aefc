"""What a resumed run's phases keep from the run it continues: a phase that run finished, as its result, and
the finetune's trace over every log it wrote (stage/resume.py stages the saver and finds the resume point).
"""
from __future__ import annotations

from pathlib import Path

from nvseg_bench.paths import phase_log
from nvseg_bench.phases.logparse import LogFacts, merge_resumed, parse_lines
from nvseg_bench.phases.runner import PhaseResult
from nvseg_bench.stage.resume import ResumePoint, earlier_logs, finished


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
