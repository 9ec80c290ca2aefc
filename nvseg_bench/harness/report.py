"""The report feature: --nvseg-report DIR (ini `nvseg_report`) writes report.md (with PNGs beside
it) and a self-contained report.html at the session's end, after every gate feature's own step.

Per run: the headline (formal Dice before and after, gain, the checkpoint to keep, verdict), the
gates table, the Dice-per-epoch plot, a mid-slice overlay of one validation case, and runtime per
phase; each gate feature adds its own headline rows and sections (`Feature.headline`,
`Feature.sections`: the comparison with the saved baseline, the verifier's findings); with saved runs
(--nvseg-autosave, --nvseg-compare) the baseline feature's trend plot of formal Dice over the saved
runs of that name (`Feature.figures`).
Plots need matplotlib (the `report` extra); without it the report says so and goes on.
"""
from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from nvseg_bench.harness.core_gates import reference_bounds
from nvseg_bench.harness.feature import Feature, Section, number
from nvseg_bench.harness.gates import FEATURES, gate_title
from nvseg_bench.harness.ledger import Ledger, RunRecord
from nvseg_bench.harness.options import HarnessOptions, add_value_option, option_path
from nvseg_bench.harness.plots import class_plot, dice_plot, forgetting_plot, overlay_plot, slope_plot
from nvseg_bench.harness.runs import REFERENCE

NO_MATPLOTLIB = "plots need matplotlib: pip install 'nvseg-bench[report]'"
CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:14px}
.passed{color:#1b7e3a}.failed,.error{color:#b00020;font-weight:bold}.skipped{color:#777}.warn{color:#a86b00}
.PASS{background:#e3f4e8}.FAIL{background:#fbe3e6}.SKIPPED{background:#eee}img{max-width:100%}
code{font-size:13px}"""
# (image key, caption) in the order the report shows them
FIGURES = (("dice", "Validation Dice per epoch"), ("slope", "Formal Dice per case, pretrained -> finetuned"),
           ("classes", "Formal Dice per class and case, pretrained -> finetuned"),
           ("forgetting", "Agreement with the pretrained model on other classes"), ("overlay", "Mid-slice overlay"))
CLASS_HEADER = ["class", "label -> VISTA3D id", "pretrained", "finetuned", "gain", "95% CI", "confidence",
                "NSD pretrained -> finetuned", "HD95 mm pretrained -> finetuned"]
FORGETTING_HEADER = ["class", "VISTA3D id", "agreement", "pretrained mL", "finetuned mL"]


@dataclass
class RunPage:
    record: RunRecord
    doc: dict[str, Any] | None
    images: dict[str, bytes] = field(default_factory=dict)
    captions: tuple[tuple[str, str], ...] = FIGURES  # (image key, caption), the report's own then the features'
    notes: list[str] = field(default_factory=list)

    def headline(self) -> list[tuple[str, str]]:
        out = (self.doc or {}).get("output", {})
        return [("verdict", self.record.verdict), ("headline", (self.doc or {}).get("headline", "")),
                ("formal Dice pretrained", number(out.get("formal_pretrained_val_dice"))),
                ("formal Dice finetuned", number(out.get("formal_finetuned_val_dice"))),
                ("improvement", number(out.get("formal_improvement_over_pretrained"), "+.4f")),
                ("gain confidence", str(out.get("gain_confidence") or "-")),
                ("classes that got worse", ", ".join(r["class"] for r in out.get("class_regressions") or []) or "none"),
                ("lowest agreement on other classes", _lowest(out.get("forgetting"))),
                *([("fold gains", fold_gains(out["cv"]))] if out.get("cv") else []),
                ("recommended checkpoint", str(out.get("recommended_ckpt", "-"))),
                ("decision", str(out.get("decision_reason", "-"))),
                ("evidence", f"{self.record.out} ({self.record.source})")] + \
            [row for feature in FEATURES for row in feature.headline(self.record)]

    def classes(self) -> list[tuple[str, ...]]:
        """One row per mapped class: formal Dice before and after, the gain and its paired interval."""
        out = (self.doc or {}).get("output", {})
        before, after = out.get("formal_pretrained_per_class") or {}, out.get("formal_finetuned_per_class") or {}
        stats = out.get("formal_class_gain_stats") or {}
        rows = []
        for c in out.get("formal_classes") or []:
            s = stats.get(c["name"]) or {}
            interval = "-" if s.get("ci_low") is None else f"{s['ci_low']:+.4f}..{s['ci_high']:+.4f}"
            rows.append((c["name"], f"{c['local']} -> {c['global']}", number(before.get(c["name"])),
                         number(after.get(c["name"])), number(s.get("mean_gain"), "+.4f"), interval,
                         str(s.get("confidence") or "-"), *_boundary_cells(out, c["name"])))
        return rows if before or after else []

    def forgetting(self) -> list[tuple[str, ...]]:
        """One row per class the forgetting check scored: its agreement and the foreground each model found."""
        block = (self.doc or {}).get("output", {}).get("forgetting") or {}
        pre, post = block.get("pretrained_foreground_ml") or {}, block.get("finetuned_foreground_ml") or {}
        return [(name, str(block["class_ids"].get(name, "-")), number(value, ".3f"), number(pre.get(name), ".1f"),
                 number(post.get(name), ".1f")) for name, value in (block.get("classes") or {}).items()]

    def gates(self) -> list[tuple[str, str, str, str]]:
        return [(gate, gate_title(gate), o.outcome, o.message)
                for gate, o in self.record.gates.items()]

    def sections(self) -> list[Section]:
        """The gate features' sections (the verifier's findings in trusted mode), shown after the gates table."""
        return [section for feature in FEATURES for section in feature.sections(self.record)]

    def phases(self) -> list[tuple[str, str, str, str]]:
        runtime = (self.doc or {}).get("runtime", {})
        codes = (self.doc or {}).get("invocation", {}).get("phase_return_codes", {})
        gpu, rss = runtime.get("phase_peak_gpu_mb", {}), runtime.get("phase_peak_rss_mb", {})
        rows = []
        for name, seconds in runtime.get("phase_seconds", {}).items():
            memory = gpu.get(name) or rss.get(name)
            kind = "GPU" if gpu.get(name) else "RSS"
            rows.append((name, f"{seconds:.1f}", "-" if memory is None else f"{memory:.0f} ({kind})", str(codes.get(name, "-"))))
        rows.append(("all", f"{runtime.get('wall_seconds', 0):.1f}", "", str(runtime.get("return_code", "-"))))
        return rows


def _boundary_cells(out: dict[str, Any], name: str) -> tuple[str, str]:
    """A class's validation NSD and HD95 before -> after (output.boundary), or dashes without them."""
    split = (out.get("boundary") or {}).get("validation") or {}
    pre, post = ((split.get(side) or {}).get("per_class", {}).get(name) or {} for side in ("pretrained", "finetuned"))
    return (f"{number(pre.get('nsd'))} -> {number(post.get('nsd'))}",
            f"{number(pre.get('hd95_mm'), '.2f')} -> {number(post.get('hd95_mm'), '.2f')}")


def _lowest(block: dict[str, Any] | None) -> str:
    if not block or block.get("min_agreement") is None:
        return "-" if not block else "no class found by either checkpoint"
    return f"{block['min_agreement']:.3f} ({block['min_class']})"


def fold_gains(cv: dict[str, Any]) -> str:
    """A cross-validation's per-fold gains, e.g. `fold 0 +0.181, fold 1 +0.213`."""
    gains = cv.get("fold_gains") or {}
    return ", ".join(f"fold {fold} {number(gains.get(str(fold)), '+.4f')}" for fold in cv.get("folds", []))


def build_page(record: RunRecord) -> RunPage:
    page = RunPage(record, record.output_json())
    if page.doc is None:
        return page
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        page.notes.append(NO_MATPLOTLIB)
        return page
    bounds = reference_bounds(REFERENCE.get(record.name))
    extra = [figure for feature in FEATURES for figure in feature.figures(record)]
    page.captions = FIGURES + tuple((key, caption) for key, caption, _ in extra)
    for name, make in (("dice", lambda: dice_plot(page.doc, bounds[0] if bounds else None)),
                       ("overlay", lambda: overlay_plot(page.doc, Path(record.out))),
                       ("slope", lambda: slope_plot(page.doc)), ("classes", lambda: class_plot(page.doc)),
                       ("forgetting", lambda: forgetting_plot(page.doc))) + tuple((key, make) for key, _, make in extra):
        try:
            png = make()
        except Exception as exc:  # a broken figure must not cost the rest of the report
            page.notes.append(f"{name} plot failed: {exc}")
            continue
        if png:
            page.images[name] = png
        else:
            page.notes.append(f"no {name} plot: the run lacks the data for it")
    return page


def _md_table(header: list[str], rows: list[tuple]) -> list[str]:
    clean = lambda c: str(c).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
        ["| " + " | ".join(clean(c) for c in row) + " |" for row in rows]


def markdown(pages: list[RunPage], report_dir: Path) -> str:
    lines = ["# nvseg-bench report", ""]
    for page in pages:
        name = page.record.name
        lines += [f"## {name}: {page.record.verdict}", ""]
        if page.doc is None:
            lines += [f"Not run: {page.record.skip_reason or 'no output.json'}", ""]
            continue
        lines += _md_table(["", ""], page.headline()) + [""]
        if page.classes():
            lines += ["### Classes", ""] + _md_table(CLASS_HEADER, page.classes()) + [""]
        if page.forgetting():
            lines += ["### Forgetting", ""] + _md_table(FORGETTING_HEADER, page.forgetting()) + [""]
        lines += ["### Gates", ""] + _md_table(["gate", "claim", "outcome", "detail"], page.gates()) + [""]
        for section in page.sections():
            lines += [f"### {section.title}", "", section.text, ""] + \
                (_md_table(list(section.header), list(section.rows)) + [""] if section.rows else [])
        for kind, caption in page.captions:
            if kind in page.images:
                file = report_dir / f"{name}_{kind}.png"
                file.write_bytes(page.images[kind])
                lines += [f"![{caption}]({file.name})", ""]
        lines += [f"> {note}" for note in page.notes] + ([""] if page.notes else [])
        lines += ["### Runtime", ""] + _md_table(["phase", "seconds", "peak MiB", "exit"], page.phases()) + [""]
    return "\n".join(lines)


def _html_table(header: list[str], rows: list[tuple], outcome_col: int | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = ""
    for row in rows:
        cells = "".join(f"<td class='{html.escape(str(c)) if i == outcome_col else ''}'>{html.escape(str(c))}</td>"
                        for i, c in enumerate(row))
        body += f"<tr>{cells}</tr>"
    return f"<table><tr>{head}</tr>{body}</table>"


def html_page(pages: list[RunPage]) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>nvseg-bench report</title>"
             f"<style>{CSS}</style></head><body><h1>nvseg-bench report</h1>"]
    for page in pages:
        verdict = page.record.verdict
        parts.append(f"<h2 class='{verdict}'>{html.escape(page.record.name)}: {verdict}</h2>")
        if page.doc is None:
            parts.append(f"<p>Not run: {html.escape(page.record.skip_reason or 'no output.json')}</p>")
            continue
        parts.append(_html_table(["", ""], page.headline()))
        if page.classes():
            parts.append("<h3>Classes</h3>" + _html_table(CLASS_HEADER, page.classes()))
        if page.forgetting():
            parts.append("<h3>Forgetting</h3>" + _html_table(FORGETTING_HEADER, page.forgetting()))
        parts.append("<h3>Gates</h3>" + _html_table(["gate", "claim", "outcome", "detail"], page.gates(), 2))
        for section in page.sections():
            parts.append(f"<h3>{html.escape(section.title)}</h3><p>{html.escape(section.text)}</p>" + (
                _html_table(list(section.header), list(section.rows), section.outcome_col) if section.rows else ""))
        for kind, caption in page.captions:
            if kind in page.images:
                data = base64.b64encode(page.images[kind]).decode()
                parts.append(f"<h3>{caption}</h3><img alt='{caption}' src='data:image/png;base64,{data}'>")
        parts += [f"<p><em>{html.escape(note)}</em></p>" for note in page.notes]
        parts.append("<h3>Runtime</h3>" + _html_table(["phase", "seconds", "peak MiB", "exit"], page.phases()))
    parts.append("</body></html>")
    return "\n".join(parts)


def track_pages(pages: list[RunPage]) -> None:
    """Add each tracked run's report figures (as plots/report_NAME.png) and its output.json with the gates to
    its MLflow run; a store that fails is a note on that run's page."""
    for page in pages:
        block = ((page.doc or {}).get("tracking") or {}).get("mlflow") or {}
        if not block.get("run_id"):
            continue
        from nvseg_bench.tracking.mlflow_run import TrackingFailed, add_to

        try:
            add_to(block, {"output.json": Path(page.record.out or "") / "output.json"}, {},
                   {f"report_{name}.png": png for name, png in page.images.items()})
        except TrackingFailed as exc:
            page.notes.append(f"the report's figures were not added to MLflow: {exc}")


def write_reports(ledger: Ledger, report_dir: Path) -> list[str]:
    report_dir.mkdir(parents=True, exist_ok=True)
    pages = [build_page(record) for record in ledger.runs.values()]
    track_pages(pages)
    (report_dir / "report.md").write_text(markdown(pages, report_dir))
    (report_dir / "report.html").write_text(html_page(pages))
    return [str(report_dir / "report.html"), str(report_dir / "report.md")]


def add_options(group: pytest.OptionGroup, parser: pytest.Parser) -> None:
    add_value_option(group, parser, "report", "write report.md and a self-contained report.html here", "DIR")


def finish(ledger: Ledger, opts: HarnessOptions, _root: Path | None) -> None:
    if opts.report is not None:
        ledger.report_paths = write_reports(ledger, opts.report)


FEATURE = Feature("report", add_options=add_options, read_options=lambda config: {"report": option_path(config, "report")},
                  path_options=("report",), finish=finish)
