"""Result figures: Fig 3-style overlays, volume agreement (Bland-Altman, predicted vs true),
and a Fig 4-style mismatch example.

Figures are built with matplotlib's object API on the Agg canvas (no pyplot, no global state,
no display needed). Slices are taken from arrays whose axes are ordered like RAS+ (axis 0 runs
from the patient's left to right, axis 1 from posterior to anterior, axis 2 upwards).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from tissuefate.errors import InputError
from tissuefate.io.atomic import atomic_path
from tissuefate.metrics import APPROACH_ORDER, TARGET_ORDER
from tissuefate.statistics import ccc_cube_root

# Fig 3 of the paper: true positive green, false negative blue, false positive red.
TRUE_POSITIVE_RGB = (0.0, 1.0, 0.0)
FALSE_NEGATIVE_RGB = (0.0, 0.0, 1.0)
FALSE_POSITIVE_RGB = (1.0, 0.0, 0.0)
TISSUE_AT_RISK_RGB = (1.0, 0.8, 0.0)
CORE_RGB = (1.0, 0.0, 1.0)
LIMITS_OF_AGREEMENT_Z = 1.96

_LABELS = {
    "tissue_at_risk": "Tissue at risk",
    "ischemic_core": "Ischemic core",
    "pretraining": "Pretraining",
    "separate": "Separate",
    "thresholding": "Thresholding",
}


def _label(name: str) -> str:
    return _LABELS.get(name, name)


def new_figure(width_in: float, height_in: float) -> Figure:
    """A figure on its own Agg canvas."""
    fig = Figure(figsize=(width_in, height_in), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 150) -> None:
    """Save atomically, without timestamps in the file, so reruns give identical bytes."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    metadata = {"png": {"Software": None}, "pdf": {"CreationDate": None, "Producer": None},
                "svg": {"Date": None}}.get(fmt)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi, metadata=metadata)


# --- slices ----------------------------------------------------------------------------


def axial_display(volume: np.ndarray, k: int, radiological: bool = True) -> np.ndarray:
    """Axial slice ``k`` as an image: anterior at the top; the patient's right on the image's
    left when ``radiological`` (the clinical convention), on the right otherwise."""
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise InputError(f"expected a 3-D volume, got shape {volume.shape}")
    image = volume[:, :, k].T[::-1, :]
    return image[:, ::-1] if radiological else image


def largest_lesion_slice(mask: np.ndarray) -> int:
    """Axial index with the most lesion voxels (lowest index on ties); middle slice if empty."""
    mask = np.asarray(mask).astype(bool)
    per_slice = mask.sum(axis=(0, 1))
    if per_slice.max(initial=0) == 0:
        return mask.shape[2] // 2
    return int(np.argmax(per_slice))


def grey_levels(background: np.ndarray, window: tuple[float, float] | None = None) -> np.ndarray:
    """Background intensities mapped to [0, 1]; default window: 1st-99th percentile of the
    finite non-zero values."""
    b = np.asarray(background, dtype=float)
    b = np.where(np.isfinite(b), b, 0.0)
    if window is None:
        inside = b[b != 0]
        window = (float(np.percentile(inside, 1)), float(np.percentile(inside, 99))) if inside.size else (0.0, 1.0)
    lo, hi = window
    if hi <= lo:
        hi = lo + 1.0
    return np.clip((b - lo) / (hi - lo), 0.0, 1.0)


def overlay_rgb(
    background: np.ndarray,
    truth: np.ndarray,
    prediction: np.ndarray,
    *,
    alpha: float = 1.0,
    window: tuple[float, float] | None = None,
) -> np.ndarray:
    """RGB image (H, W, 3) in [0, 1]: grey background, true positives green, false negatives
    blue, false positives red, blended with opacity ``alpha``."""
    grey = grey_levels(background, window)
    truth = np.asarray(truth).astype(bool)
    prediction = np.asarray(prediction).astype(bool)
    if not (grey.shape == truth.shape == prediction.shape) or grey.ndim != 2:
        raise InputError(f"overlay needs three 2-D slices of one shape, got {grey.shape}, {truth.shape}, "
                         f"{prediction.shape}")
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    for mask, colour in ((truth & prediction, TRUE_POSITIVE_RGB), (truth & ~prediction, FALSE_NEGATIVE_RGB),
                         (~truth & prediction, FALSE_POSITIVE_RGB)):
        rgb[mask] = (1.0 - alpha) * rgb[mask] + alpha * np.asarray(colour)
    return rgb


def overlay_figure(
    background: np.ndarray,
    truth: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    *,
    slice_index: int | None = None,
    title: str | None = None,
    radiological: bool = True,
    alpha: float = 0.6,
    background_label: str = "follow-up FLAIR",
) -> Figure:
    """Fig 3-style row: one panel per approach (binary predictions in MNI space) over
    ``background`` (the paper's: the follow-up FLAIR in MNI space; ``background_label``
    names it under the legend); the slice defaults to the one with the largest true lesion."""
    if not predictions:
        raise InputError("no prediction to show")
    k = largest_lesion_slice(truth) if slice_index is None else int(slice_index)
    bg = axial_display(background, k, radiological)
    tr = axial_display(np.asarray(truth).astype(bool), k, radiological)
    fig = new_figure(3.0 * len(predictions), 3.4)
    axes = fig.subplots(1, len(predictions), squeeze=False)[0]
    for ax, (name, pred) in zip(axes, predictions.items()):
        pr = axial_display(np.asarray(pred).astype(bool), k, radiological)
        ax.imshow(overlay_rgb(bg, tr, pr, alpha=alpha), interpolation="nearest")
        ax.set_title(_label(name))
        ax.set_axis_off()
    fig.legend(handles=[Patch(color=TRUE_POSITIVE_RGB, label="true positive"),
                        Patch(color=FALSE_NEGATIVE_RGB, label="false negative"),
                        Patch(color=FALSE_POSITIVE_RGB, label="false positive")],
               loc="outside lower center", ncols=3, frameon=False, title=f"over the {background_label}")
    if title:
        fig.suptitle(title)
    return fig


# --- volume agreement ------------------------------------------------------------------


def bland_altman_stats(pred_ml: Sequence[float], true_ml: Sequence[float]) -> dict[str, float]:
    """Mean of the differences (predicted - true), their SD (n - 1) and the 95 % limits of
    agreement mean -/+ 1.96 SD (Bland & Altman 1986); pairs with a NaN are dropped."""
    pred = np.asarray(pred_ml, dtype=float)
    true = np.asarray(true_ml, dtype=float)
    keep = ~(np.isnan(pred) | np.isnan(true))
    diff = pred[keep] - true[keep]
    n = int(diff.size)
    mean = float(diff.mean()) if n else math.nan
    sd = float(diff.std(ddof=1)) if n > 1 else math.nan
    return {"n": n, "mean_diff": mean, "sd_diff": sd,
            "loa_low": mean - LIMITS_OF_AGREEMENT_Z * sd, "loa_high": mean + LIMITS_OF_AGREEMENT_Z * sd}


def plot_bland_altman(ax: Axes, pred_ml: Sequence[float], true_ml: Sequence[float]) -> dict[str, float]:
    """Difference (predicted - true) against the mean of the two, with the mean difference
    (solid) and limits of agreement (dashed); returns ``bland_altman_stats``."""
    pred = np.asarray(pred_ml, dtype=float)
    true = np.asarray(true_ml, dtype=float)
    keep = ~(np.isnan(pred) | np.isnan(true))
    s = bland_altman_stats(pred, true)
    ax.scatter((pred[keep] + true[keep]) / 2.0, pred[keep] - true[keep], s=14, color="0.2")
    ax.axhline(0.0, color="0.7", linewidth=0.8, label="no difference")
    if s["n"]:
        ax.axhline(s["mean_diff"], color="tab:blue", linewidth=1.2, label="mean difference")
    if s["n"] > 1:
        for key in ("loa_low", "loa_high"):
            ax.axhline(s[key], color="tab:blue", linestyle="--", linewidth=1.0,
                       label="limits of agreement" if key == "loa_low" else None)
    ax.set_xlabel("mean of predicted and true volume (mL)")
    ax.set_ylabel("predicted − true volume (mL)")
    return s


def plot_volume_scatter(ax: Axes, pred_ml: Sequence[float], true_ml: Sequence[float]) -> None:
    """Predicted against true volume on equal axes with the line of identity."""
    pred = np.asarray(pred_ml, dtype=float)
    true = np.asarray(true_ml, dtype=float)
    keep = ~(np.isnan(pred) | np.isnan(true))
    ax.scatter(true[keep], pred[keep], s=14, color="0.2")
    top = float(max(np.max(pred[keep], initial=0.0), np.max(true[keep], initial=0.0))) * 1.05 or 1.0
    ax.plot([0.0, top], [0.0, top], color="0.6", linestyle="--", linewidth=1.0, label="line of identity")
    ax.set_xlim(0.0, top)
    ax.set_ylim(0.0, top)
    ax.set_aspect("equal")
    ax.set_xlabel("true volume (mL)")
    ax.set_ylabel("predicted volume (mL)")


def _cell(per_case: pd.DataFrame, target: str, approach: str) -> pd.DataFrame:
    cell = per_case[(per_case["target"] == target) & (per_case["approach"] == approach)]
    return cell.sort_values("participant_id", kind="mergesort")


def volume_agreement_figure(per_case: pd.DataFrame, target: str, approach: str) -> Figure:
    """Predicted vs true volume and Bland-Altman for one target and approach, titled with
    Lin's ρc on cube-root volumes."""
    cell = _cell(per_case, target, approach)
    if cell.empty:
        raise InputError(f"the per-case table has no row for {target} / {approach}")
    fig = new_figure(8.0, 3.8)
    ax_scatter, ax_ba = fig.subplots(1, 2)
    plot_volume_scatter(ax_scatter, cell["volume_pred_ml"], cell["volume_true_ml"])
    plot_bland_altman(ax_ba, cell["volume_pred_ml"], cell["volume_true_ml"])
    ax_ba.legend(loc="best", fontsize="small", frameon=False)
    ccc = ccc_cube_root(cell["volume_pred_ml"], cell["volume_true_ml"]).ccc
    ccc_text = "n/a" if math.isnan(ccc) else f"{ccc:.3f}"
    fig.suptitle(f"{_label(target)}, {_label(approach)} (n = {len(cell)}, ρc cube root = {ccc_text})")
    return fig


def volume_agreement_grid(per_case: pd.DataFrame, kind: str = "bland_altman") -> Figure:
    """One panel per target (rows) and approach (columns): ``bland_altman`` or ``scatter``."""
    if kind not in ("bland_altman", "scatter"):
        raise InputError(f"plot kind {kind!r} is not bland_altman or scatter")
    targets = [t for t in TARGET_ORDER if t in set(per_case["target"])] + sorted(
        set(per_case["target"]) - set(TARGET_ORDER))
    approaches = [a for a in APPROACH_ORDER if a in set(per_case["approach"])] + sorted(
        set(per_case["approach"]) - set(APPROACH_ORDER))
    if not targets or not approaches:
        raise InputError("the per-case table is empty")
    fig = new_figure(3.4 * len(approaches), 3.2 * len(targets))
    axes = fig.subplots(len(targets), len(approaches), squeeze=False)
    for i, target in enumerate(targets):
        for j, approach in enumerate(approaches):
            ax = axes[i][j]
            cell = _cell(per_case, target, approach)
            if kind == "bland_altman":
                plot_bland_altman(ax, cell["volume_pred_ml"], cell["volume_true_ml"])
            else:
                plot_volume_scatter(ax, cell["volume_pred_ml"], cell["volume_true_ml"])
            ax.set_title(f"{_label(target)}: {_label(approach)}", fontsize="medium")
    return fig


# --- mismatch --------------------------------------------------------------------------


def mismatch_figure(
    background: np.ndarray,
    panels: Mapping[str, tuple[np.ndarray, np.ndarray, float]],
    *,
    slice_index: int | None = None,
    title: str | None = None,
    radiological: bool = True,
) -> Figure:
    """Fig 4-style: per approach, tissue-at-risk (yellow) and core (magenta) outlines over the
    baseline image, titled with the mismatch ratio. ``panels`` maps an approach to
    (tissue-at-risk mask, core mask, mismatch ratio); the slice defaults to the one with the
    largest tissue at risk in the first panel."""
    if not panels:
        raise InputError("no mismatch panel to show")
    first_tar = np.asarray(next(iter(panels.values()))[0]).astype(bool)
    k = largest_lesion_slice(first_tar) if slice_index is None else int(slice_index)
    bg = axial_display(background, k, radiological)
    fig = new_figure(3.0 * len(panels), 3.4)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, (tar, core, ratio)) in zip(axes, panels.items()):
        ax.imshow(grey_levels(bg), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        for mask, colour in ((tar, TISSUE_AT_RISK_RGB), (core, CORE_RGB)):
            m = axial_display(np.asarray(mask).astype(bool), k, radiological)
            if m.any():  # an empty mask has no outline (and matplotlib would warn)
                ax.contour(m.astype(float), levels=[0.5], colors=[colour], linewidths=1.2)
        ratio_text = "n/a" if ratio is None or math.isnan(ratio) else f"{ratio:.1f}"
        ax.set_title(f"{_label(name)}: mismatch ratio {ratio_text}")
        ax.set_axis_off()
    fig.legend(handles=[Line2D([], [], color=TISSUE_AT_RISK_RGB, label="tissue at risk"),
                        Line2D([], [], color=CORE_RGB, label="ischemic core")],
               loc="outside lower center", ncols=2, frameon=False)
    if title:
        fig.suptitle(title)
    return fig
