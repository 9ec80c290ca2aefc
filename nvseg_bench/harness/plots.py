"""PNG figures for the report: validation Dice per epoch with the formal points, and a mid-slice
overlay of one validation case. matplotlib's object API (no pyplot, no global state), Agg only.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

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
    stem = case.removesuffix(".nii.gz").removesuffix(".nii")
    preds = {side: run_dir / f"eval_{side}" / f"{stem}_seg.nii.gz" for side in ("pretrained", "finetuned")}
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
        if path.is_file():
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


def slope_plot(doc: dict[str, Any]) -> bytes | None:
    """Paired slope chart: one line per validation case, formal Dice before -> after finetuning; in a
    cross-validation every case, coloured by its fold, with each fold's gain in the legend."""
    from matplotlib.figure import Figure

    out = doc.get("output", {})
    before, after = out.get("formal_pretrained_per_case") or {}, out.get("formal_finetuned_per_case") or {}
    cases = sorted(set(before) & set(after))
    if not cases:
        return None
    figure = Figure(figsize=(4.8, 4.2))
    ax = figure.add_subplot()
    cv = out.get("cv") or {}
    folds = cv.get("case_folds") or {}
    for case in cases:
        gain = after[case] - before[case]
        color = FINETUNED_COLOR if gain > 0 else PRETRAINED_COLOR if gain < 0 else "#888888"
        if folds:  # a cross-validation: each case in the colour of the fold that held it out
            color = FOLD_COLORS[sorted(cv["folds"]).index(folds[case]) % len(FOLD_COLORS)]
        ax.plot([0, 1], [before[case], after[case]], "o-", color=color, alpha=0.75, lw=1.2)
    if folds:
        gains = cv.get("fold_gains") or {}
        for index, fold in enumerate(sorted(cv["folds"])):
            gain = gains.get(str(fold))
            ax.plot([], [], "o-", color=FOLD_COLORS[index % len(FOLD_COLORS)],
                    label=f"fold {fold}" + (f" ({gain:+.3f})" if gain is not None else ""))
        ax.legend(fontsize=7, loc="best")
    stats = out.get("formal_gain_stats") or {}
    if stats.get("ci_low") is not None:
        title = (f"mean gain {stats['mean_gain']:+.4f}, 95% CI {stats['ci_low']:+.4f}..{stats['ci_high']:+.4f}\n"
                 f"{stats['n_better']} of {stats['n_cases']} cases better ({out.get('gain_confidence')})")
    else:
        title = f"{len(cases)} cases"
    ax.set_title(title, fontsize=9)
    ax.set_xticks([0, 1], ["pretrained", "finetuned"])
    ax.set_xlim(-0.25, 1.25)
    ax.set_ylabel("formal Dice per case")
    ax.grid(alpha=0.3, axis="y")
    return _png(figure)
