"""PNG figures for the report: validation Dice per epoch with the formal points, and a mid-slice
overlay of one validation case. matplotlib's object API (no pyplot, no global state), Agg only.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from nvseg_bench.evidence.collect import prediction_file

PRETRAINED_COLOR, FINETUNED_COLOR, LABEL_COLOR = "#d95f02", "#1b9e77", "#7570b3"


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def dice_plot(doc: dict[str, Any], bounds: dict[str, float] | None = None) -> bytes | None:
    """Training-time validation Dice per epoch, the formal pre/post points, and reference minimums."""
    from matplotlib.figure import Figure

    out = doc.get("output", {})
    dice = out.get("val_dice_per_epoch") or []
    if not dice:
        return None
    epochs = out.get("val_dice_epochs") or list(range(len(dice)))
    figure = Figure(figsize=(6.4, 3.8))
    ax = figure.add_subplot()
    ax.plot(epochs, dice, "o-", color="#444444", label="validation Dice (training, resampled)")
    best = out.get("training_best_epoch_index")
    if best is not None and best < len(dice):
        ax.plot([epochs[best]], [dice[best]], "*", ms=14, color=FINETUNED_COLOR, label=f"best epoch {epochs[best]}")
    for key, x, color, text in (("formal_pretrained_val_dice", epochs[0], PRETRAINED_COLOR, "formal pretrained"),
                                ("formal_finetuned_val_dice", epochs[-1], FINETUNED_COLOR, "formal finetuned")):
        if out.get(key) is not None:
            ax.plot([x], [out[key]], "D", ms=9, color=color, label=f"{text} {out[key]:.4f}")
    for name, bound in (bounds or {}).items():
        if name == "formal_finetuned_val_dice":
            ax.axhline(bound, ls="--", lw=1, color=FINETUNED_COLOR, label=f"reference min {bound}")
    ax.set_xlabel("epoch (0 = before finetuning)")
    ax.set_ylabel("Dice")
    ax.set_xticks(epochs)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(doc.get("headline", ""), fontsize=9)
    return _png(figure)


def _validation_case(doc: dict[str, Any]) -> tuple[Path, Path, str] | None:
    """(image, label, case file name) of the first formally evaluated validation case."""
    inp, out = doc.get("input", {}), doc.get("output", {})
    cases = list(out.get("formal_finetuned_per_case") or {})
    datalist, root = Path(inp.get("datalist") or ""), Path(inp.get("dataset_dir") or "")
    if not cases or not datalist.is_file():
        return None
    for entry in json.loads(datalist.read_text()).get("training", []):
        image = root / entry["image"]
        if image.name == cases[0]:
            return image, root / entry["label"], cases[0]
    return None


def _axial(path: Path) -> np.ndarray:
    """The volume in RAS+ order, so every case shows the same way whatever its stored orientation."""
    import nibabel

    return np.asarray(nibabel.as_closest_canonical(nibabel.load(str(path))).dataobj)


def _radiological(volume: np.ndarray, z: int) -> np.ndarray:
    """Axial slice as radiologists read it: patient right on the screen's left, anterior up."""
    return volume[::-1, :, z].T


def overlay_plot(doc: dict[str, Any], run_dir: Path) -> bytes | None:
    """Image, label, pretrained and finetuned prediction on the axial slice through the label's middle."""
    from matplotlib.figure import Figure

    found = _validation_case(doc)
    if found is None:
        return None
    image_path, label_path, case = found
    preds = {side: prediction_file(run_dir / f"eval_{side}", case) for side in ("pretrained", "finetuned")}
    if not image_path.is_file() or not label_path.is_file():
        return None
    image, label = _axial(image_path), _axial(label_path) > 0
    zs = np.flatnonzero(label.any(axis=(0, 1)))
    z = int((zs[0] + zs[-1]) // 2) if zs.size else image.shape[2] // 2
    low, high = np.percentile(image[..., z], [1, 99])  # a window that suits any intensity range
    figure = Figure(figsize=(12, 3.4))
    panels = [("image", None, None), ("label", label, LABEL_COLOR)]
    per_case = doc.get("output", {})
    for side, path in preds.items():
        if path is not None:
            score = (per_case.get(f"formal_{side}_per_case") or {}).get(case)
            title = f"{side} prediction" + (f" (Dice {score:.3f})" if score is not None else "")
            panels.append((title, _axial(path) > 0, PRETRAINED_COLOR if side == "pretrained" else FINETUNED_COLOR))
    for index, (title, mask, color) in enumerate(panels, start=1):
        ax = figure.add_subplot(1, len(panels), index)
        ax.imshow(_radiological(image, z), cmap="gray", vmin=low, vmax=high, origin="lower")
        if mask is not None:
            plane = _radiological(mask, z).astype(float)
            ax.contourf(plane, levels=[0.5, 1.5], colors=[color], alpha=0.45, origin="lower")
            ax.contour(plane, levels=[0.5], colors=[color], linewidths=1.2, origin="lower")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    where = f"axial slice {z} of {image.shape[2]} through the label's middle; patient right on the left"
    figure.suptitle(f"{case}: {where}", fontsize=9)
    return _png(figure)


FOLD_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
               "#17becf")  # matplotlib's tab10


def _slopes(ax: Any, before: dict[str, float], after: dict[str, float],
            color_of: Callable[[str], str] | None = None) -> list[str]:
    """One line per case scored both times, green up, orange down (or `color_of(case)`); the cases drawn."""
    cases = sorted(k for k in set(before) & set(after) if before[k] is not None and after[k] is not None)
    for case in cases:
        gain = after[case] - before[case]
        color = FINETUNED_COLOR if gain > 0 else PRETRAINED_COLOR if gain < 0 else "#888888"
        ax.plot([0, 1], [before[case], after[case]], "o-", color=color_of(case) if color_of else color, alpha=0.75,
                lw=1.2)
    ax.set_xticks([0, 1], ["pretrained", "finetuned"])
    ax.set_xlim(-0.25, 1.25)
    ax.grid(alpha=0.3, axis="y")
    return cases


def _interval_title(stats: dict[str, Any] | None, n_cases: int) -> str:
    if not stats or stats.get("ci_low") is None:
        return f"{n_cases} cases"
    return (f"mean gain {stats['mean_gain']:+.4f}, 95% CI {stats['ci_low']:+.4f}..{stats['ci_high']:+.4f}\n"
            f"{stats['n_better']} of {stats['n_cases']} cases better ({stats.get('confidence')})")


def slope_plot(doc: dict[str, Any]) -> bytes | None:
    """Paired slope chart: one line per validation case, formal Dice before -> after finetuning; in a
    cross-validation every case, coloured by its fold, with each fold's gain in the legend."""
    from matplotlib.figure import Figure

    out = doc.get("output", {})
    before, after = out.get("formal_pretrained_per_case") or {}, out.get("formal_finetuned_per_case") or {}
    if not set(before) & set(after):
        return None
    figure = Figure(figsize=(4.8, 4.2))
    ax = figure.add_subplot()
    cv = out.get("cv") or {}
    folds = cv.get("case_folds") or {}
    order = sorted(cv.get("folds") or [])
    by_fold = (lambda case: FOLD_COLORS[order.index(folds[case]) % len(FOLD_COLORS)]) if folds else None
    cases = _slopes(ax, before, after, by_fold)  # a cross-validation: each case in the colour of its fold
    if folds:
        gains = cv.get("fold_gains") or {}
        for index, fold in enumerate(order):
            gain = gains.get(str(fold))
            ax.plot([], [], "o-", color=FOLD_COLORS[index % len(FOLD_COLORS)],
                    label=f"fold {fold}" + (f" ({gain:+.3f})" if gain is not None else ""))
        ax.legend(fontsize=7, loc="best")
    ax.set_title(_interval_title(out.get("formal_gain_stats"), len(cases)), fontsize=9)
    ax.set_ylabel("formal Dice per case")
    return _png(figure)


def _column(table: dict[str, dict[str, float | None]], name: str) -> dict[str, float]:
    return {case: row[name] for case, row in table.items() if row.get(name) is not None}


def class_plot(doc: dict[str, Any], per_row: int = 4) -> bytes | None:
    """One small slope chart per mapped class: each case's Dice of that class before -> after, and its interval."""
    from matplotlib.figure import Figure

    out = doc.get("output", {})
    classes = [c["name"] for c in out.get("formal_classes") or []]
    before = out.get("formal_pretrained_per_case_per_class") or {}
    after = out.get("formal_finetuned_per_case_per_class") or {}
    if not classes or not before or not after:
        return None
    stats = out.get("formal_class_gain_stats") or {}
    rows = -(-len(classes) // per_row)
    columns = min(per_row, len(classes))
    figure = Figure(figsize=(3.0 * columns, 3.1 * rows))
    for index, name in enumerate(classes, start=1):
        ax = figure.add_subplot(rows, columns, index)
        cases = _slopes(ax, _column(before, name), _column(after, name))
        ax.set_title(f"{name}\n" + _interval_title(stats.get(name), len(cases)), fontsize=8)
        if (index - 1) % columns == 0:
            ax.set_ylabel("formal Dice")
    figure.tight_layout()
    return _png(figure)


def forgetting_plot(doc: dict[str, Any]) -> bytes | None:
    """Agreement with the pretrained model per class the forgetting check scored, one bar each, and each
    case as a dot; the dashed line is the bound below which the headline names the class."""
    from matplotlib.figure import Figure

    block = doc.get("output", {}).get("forgetting") or {}
    classes = [name for name, value in (block.get("classes") or {}).items() if value is not None]
    if not classes:
        return None
    figure = Figure(figsize=(max(4.0, 1.1 * len(classes) + 1.5), 3.6))
    ax = figure.add_subplot()
    values = [block["classes"][name] for name in classes]
    bound = float(block.get("headline_below") or 0.0)
    colors = [FINETUNED_COLOR if v >= bound else PRETRAINED_COLOR for v in values]
    ax.bar(range(len(classes)), values, color=colors, alpha=0.8)
    for index, name in enumerate(classes):
        dots = [row[name] for row in (block.get("per_case") or {}).values() if row.get(name) is not None]
        ax.plot([index] * len(dots), dots, "o", color="#333333", ms=3, alpha=0.7)
    if bound:
        ax.axhline(bound, ls="--", lw=1, color="#666666")
    ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("Dice, pretrained vs finetuned prediction")
    ax.set_title(f"forgetting check over {len(block.get('per_case') or {})} validation cases", fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    return _png(figure)


def trend_plot(records: list[dict[str, Any]]) -> bytes | None:
    """Formal Dice of each saved run of one name, oldest first: finetuned with its 95% interval, and pretrained."""
    from matplotlib.figure import Figure

    points = [(r, (r.get("figures") or {})) for r in records]
    points = [(r, f) for r, f in points if f.get("formal_finetuned_val_dice") is not None]
    if not points:
        return None
    x = np.arange(len(points))
    after = np.array([f["formal_finetuned_val_dice"] for _, f in points])
    ci = [f.get("formal_finetuned_ci") or [v, v] for (_, f), v in zip(points, after)]
    spread = np.array([[v - low for (low, _), v in zip(ci, after)], [high - v for (_, high), v in zip(ci, after)]])
    figure = Figure(figsize=(max(4.8, 0.55 * len(points) + 2), 3.8))
    ax = figure.add_subplot()
    ax.errorbar(x, after, yerr=np.clip(spread, 0, None), fmt="o-", color=FINETUNED_COLOR, capsize=3,
                label="finetuned (95% CI over cases)")
    before = [f.get("formal_pretrained_val_dice") for _, f in points]
    if all(v is not None for v in before):
        ax.plot(x, before, "s--", color=PRETRAINED_COLOR, alpha=0.7, label="pretrained")
    ax.set_xticks(x, [str(r.get("saved_at", ""))[:16].replace("T", "\n") for r, _ in points], fontsize=7)
    ax.set_ylabel("formal Dice")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(f"formal Dice over {len(points)} saved {points[0][0].get('name')} runs, oldest first", fontsize=9)
    return _png(figure)


def boundary_plot(doc: dict[str, Any], split: str = "validation") -> bytes | None:
    """Two paired slope charts of the split's boundary metrics, one line per case: NSD (up is better) and HD95
    in mm (down is better, so a line is green when it falls), each titled with its paired gain."""
    from matplotlib.figure import Figure

    block = ((doc.get("output") or {}).get("boundary") or {}).get(split) or {}
    pre, post = block.get("pretrained") or {}, block.get("finetuned") or {}
    if not pre.get("per_case") or not post.get("per_case"):
        return None
    tolerance = doc["output"]["boundary"].get("tolerance_mm")
    figure = Figure(figsize=(8.0, 3.6))
    for index, (key, label, stats) in enumerate((("nsd", f"NSD at {tolerance} mm", "nsd_gain_stats"),
                                                 ("hd95_mm", "HD95 (mm)", "hd95_gain_stats")), start=1):
        ax = figure.add_subplot(1, 2, index)
        before, after = _column(pre["per_case"], key), _column(post["per_case"], key)
        color_of = None if key == "nsd" else (lambda case, b=before, a=after: FINETUNED_COLOR if a[case] < b[case]
                                              else PRETRAINED_COLOR if a[case] > b[case] else "#888888")
        cases = _slopes(ax, before, after, color_of)
        ax.set_ylabel(label)
        title = _interval_title(block.get(stats), len(cases))
        ax.set_title(title + ("\n(gain = reduction in mm)" if key != "nsd" else ""), fontsize=8)
    figure.tight_layout()
    return _png(figure)
