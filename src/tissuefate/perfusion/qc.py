"""The perfusion QC figure: AIF with the tissue curves of the hypoperfused and the healthy
side, where the AIF was found, and the maps (matplotlib object API, Agg canvas)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tissuefate.io.atomic import atomic_path

# Display ranges: Tmax and MTT on fixed scales (Tmax > 6 s stands out); CBF, CBV and TTP from
# 0 (or the 2nd percentile) to the 98th percentile, because absolute DSC CBF/CBV depend on the AIF's scale.
_RANGES = {"Tmax": (0, 12), "MTT": (0, 20), "CBF": (0, None), "CBV": (0, None), "TTP": (None, None)}


def sides(tmax: np.ndarray, head: np.ndarray, threshold_s: float = 6.0) -> tuple[np.ndarray, np.ndarray, str]:
    """Voxels of the hypoperfused and of the healthy side.

    Hypoperfused: Tmax > ``threshold_s`` where at least 10 voxels pass; else the left-right half
    of the head (first array axis) with the longer median Tmax. Healthy: the other half,
    Tmax at most ``threshold_s``.
    """
    centre = int(round(np.argwhere(head)[:, 0].mean())) if head.any() else head.shape[0] // 2
    first = np.zeros_like(head)
    first[:centre] = True
    halves = (head & first, head & ~first)
    medians = [np.median(tmax[h]) if h.any() else -np.inf for h in halves]
    slow = int(np.argmax(medians))
    late = head & (tmax > threshold_s)
    if late.sum() >= 10:
        return late, halves[1 - slow] & (tmax <= threshold_s), f"Tmax > {threshold_s:g} s"
    return halves[slow], halves[1 - slow], "slower half"


def qc_figure(
    path: str | Path,
    *,
    title: str,
    times_s: np.ndarray,
    aif: np.ndarray,
    tissue_curves: np.ndarray,
    brain: np.ndarray,
    baseline_image: np.ndarray,
    aif_voxels: np.ndarray,
    maps: dict[str, np.ndarray],
) -> None:
    """Write the QC PNG atomically. ``tissue_curves`` (voxels of ``brain``, T); maps (X, Y, Z)."""
    head = brain
    slow, healthy, slow_label = sides(maps["Tmax"], brain)
    side_curves = [tissue_curves[m[brain]].mean(axis=0) if m.any() else None for m in (slow, healthy)]
    z = int(np.bincount(aif_voxels[:, 2]).argmax()) if len(aif_voxels) else head.shape[2] // 2
    fig = Figure(figsize=(16, 7.5), dpi=90)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, 4)
    ax = fig.add_subplot(grid[0, :2])
    ax.plot(times_s, aif, "r-", lw=2, label=f"AIF ({len(aif_voxels)} voxels)")
    # Tissue curves scaled so that the hypoperfused one peaks at a third of the AIF (legend gives the factor).
    scale = 1.0
    if side_curves[0] is not None:
        scale = max(1.0, float(aif.max() / max(side_curves[0].max(), 1e-12)) / 3.0)
    for curve, style, label in zip(side_curves, ("b-", "g-"), (f"hypoperfused ({slow_label})", "healthy side")):
        if curve is not None:
            ax.plot(times_s, curve * scale, style, label=f"{label} x {scale:.1f}")
    ax.set_xlabel("time from the first steady-state frame (s)")
    ax.set_ylabel("Delta R2* (1/s)")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title("AIF and tissue curves")
    ax = fig.add_subplot(grid[0, 2])
    ax.imshow(np.rot90(baseline_image[:, :, z]), cmap="gray")
    on_slice = aif_voxels[aif_voxels[:, 2] == z] if len(aif_voxels) else np.zeros((0, 3), int)
    nx = baseline_image.shape[1]
    ax.plot(on_slice[:, 0], nx - 1 - on_slice[:, 1], "r+", ms=8)
    ax.set_title(f"AIF voxels on slice {z} (baseline)")
    ax.axis("off")
    panels = [("Tmax", "s"), ("MTT", "s"), ("CBF", "mL/100g/min"), ("CBV", "mL/100g"), ("TTP", "s")]
    slots = [grid[0, 3], grid[1, 0], grid[1, 1], grid[1, 2], grid[1, 3]]
    for (name, unit), slot in zip(panels, slots):
        ax = fig.add_subplot(slot)
        data = np.where(head, maps[name], np.nan)[:, :, z]
        vmin, vmax = _RANGES[name]
        finite = data[np.isfinite(data)]
        if vmin is None:
            vmin = float(np.percentile(finite, 2)) if finite.size else 0.0
        if vmax is None:
            vmax = float(np.percentile(finite, 98)) if finite.size else 1.0
        im = ax.imshow(np.rot90(data), cmap="jet" if name != "CBV" else "viridis", vmin=vmin, vmax=vmax)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label=unit)
        ax.set_title(name)
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


# ------------------------------------------------------------------ agreement with a known truth

TMAX_AGREEMENT_COLUMNS = ("participant_id", "session", "tmax_threshold_s", "volume_computed_ml",
                          "volume_truth_ml", "volume_error_ml", "volume_error_percent", "dice")


def tmax_threshold_agreement(computed_tmax: np.ndarray, truth_tmax: np.ndarray, mask: np.ndarray,
                             voxel_ml: float, threshold_s: float = 6.0) -> dict:
    """Dice and volume error of ``Tmax > threshold_s`` (computed vs truth) inside ``mask``.

    For the simulated cohort (truth from the simulator) and any series with reference maps;
    both maps on the same grid. Dice is NaN when both lesions are empty.
    """
    computed = (computed_tmax > threshold_s) & mask
    truth = (truth_tmax > threshold_s) & mask
    n_c, n_t = int(computed.sum()), int(truth.sum())
    dice = 2.0 * int((computed & truth).sum()) / (n_c + n_t) if n_c + n_t else float("nan")
    v_c, v_t = n_c * voxel_ml, n_t * voxel_ml
    return {
        "tmax_threshold_s": threshold_s,
        "volume_computed_ml": round(v_c, 3),
        "volume_truth_ml": round(v_t, 3),
        "volume_error_ml": round(v_c - v_t, 3),
        "volume_error_percent": round(100.0 * (v_c - v_t) / v_t, 2) if v_t else float("nan"),
        "dice": round(dice, 4) if np.isfinite(dice) else dice,
    }
