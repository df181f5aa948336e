"""From the raw DSC-MRI signal to the change of transverse relaxation rate, Delta R2*.

Steps (docs/perfusion.md gives the equations and sources):
1. drop the first frames that are not at steady state (their signal is higher);
2. find the bolus arrival on the brain's mean curve and take the frames before it as baseline;
3. ``Delta R2*(t) = -ln(S(t)/S0) / TE`` (Rosen et al., MRM 1990), proportional to the
   contrast-agent concentration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

# The most leading frames that may be dropped as non-steady-state.
MAX_NONSTEADY_FRAMES = 3
# Fewest frames a series must keep (baseline, first pass and some recirculation).
MIN_FRAMES = 15
# Fewest baseline frames before the bolus.
MIN_BASELINE_FRAMES = 2


class SignalError(ValueError):
    """A series that cannot give perfusion maps; the job turns it into an InputError."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold (IEEE SMC 1979) of a 1D sample: maximises the between-class variance."""
    hist, edges = np.histogram(values, bins=bins)
    centres = 0.5 * (edges[:-1] + edges[1:])
    weight = np.cumsum(hist).astype(np.float64)
    total = weight[-1]
    mean_cum = np.cumsum(hist * centres)
    with np.errstate(divide="ignore", invalid="ignore"):
        m0 = mean_cum / weight
        m1 = (mean_cum[-1] - mean_cum) / (total - weight)
        between = weight * (total - weight) * (m0 - m1) ** 2
    between = np.nan_to_num(between[:-1], nan=-1.0)
    return float(centres[int(np.argmax(between))])


def head_mask(mean_image: np.ndarray, erode_voxels: int = 2) -> np.ndarray:
    """Voxels of the brain: Otsu threshold of the mean image, opened (erode, keep the largest
    component, dilate back) so that the scalp ring and the bright eyes fall away, holes filled
    slice by slice (ventricles)."""
    values = mean_image[np.isfinite(mean_image)]
    if values.size == 0 or values.max() <= values.min():
        return np.zeros(mean_image.shape, dtype=bool)
    mask = mean_image > otsu_threshold(values)
    structure = ndimage.generate_binary_structure(3, 1)
    structure[:, :, 0] = structure[:, :, 2] = False  # in-plane only: slabs are thin in z
    core = ndimage.binary_erosion(mask, structure, iterations=erode_voxels)
    labels, n = ndimage.label(core if core.any() else mask)
    if n > 1:
        sizes = ndimage.sum(labels > 0, labels, index=np.arange(1, n + 1))
        core = labels == (1 + int(np.argmax(sizes)))
    else:
        core = labels > 0
    mask = ndimage.binary_dilation(core, structure, iterations=erode_voxels) & mask
    for z in range(mask.shape[2]):
        mask[:, :, z] = ndimage.binary_fill_holes(mask[:, :, z])
    return mask


def mean_curve(signal: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return signal[mask].mean(axis=0, dtype=np.float64)


def nonsteady_frames(curve: np.ndarray) -> int:
    """Leading frames whose mean signal stands above the following baseline (T1 not at steady state)."""
    reference = curve[MAX_NONSTEADY_FRAMES : MAX_NONSTEADY_FRAMES + 5]
    level = float(np.median(reference))
    noise = float(np.std(reference))
    drop = 0
    for value in curve[:MAX_NONSTEADY_FRAMES]:
        if value > level + max(4.0 * noise, 0.01 * level):
            drop += 1
        else:
            break
    return drop


@dataclass(frozen=True)
class Bolus:
    arrival: int  # first frame of the bolus (index in the kept frames)
    minimum: int  # frame of the deepest signal drop
    depth: float  # relative signal drop at the minimum (0.1 = 10 %)


def bolus_arrival(curve: np.ndarray, min_depth: float = 0.02) -> Bolus:
    """Bolus arrival on a mean signal curve: the first frame that falls by a tenth of the
    first-pass drop below the baseline before the minimum (no fixed "first N frames")."""
    tmin = int(np.argmin(curve))
    if tmin < MIN_BASELINE_FRAMES + 1:
        raise SignalError(
            f"the signal's deepest drop is at frame {tmin}, too early for a baseline before the bolus",
            "start the acquisition at least a few frames (about 10 s) before the contrast injection",
        )
    pre = curve[:tmin]
    level = float(np.median(pre))
    depth = level - float(curve[tmin])
    # Noise from frame-to-frame differences of the pre-bolus part (robust to a slow drift).
    noise = float(np.median(np.abs(np.diff(pre))) * 1.4826 / np.sqrt(2)) if pre.size > 2 else 0.0
    if level <= 0 or depth / level < min_depth or depth < 5.0 * noise:
        raise SignalError(
            f"no bolus: the brain's mean signal drops by {100 * max(depth, 0) / max(level, 1e-12):.1f} % at most "
            f"(at least {100 * min_depth:.0f} % and 5 noise SD expected)",
            "check that this is a DSC series acquired during a contrast injection",
        )
    # The first frame of the contiguous drop that leads into the minimum.
    arrival = tmin
    for t in range(tmin - 1, -1, -1):
        if curve[t] < level - 0.1 * depth:
            arrival = t
        else:
            break
    if arrival < MIN_BASELINE_FRAMES:
        raise SignalError(
            f"the bolus arrives at frame {arrival}: fewer than {MIN_BASELINE_FRAMES} baseline frames",
            "start the acquisition at least a few frames (about 10 s) before the contrast injection",
        )
    return Bolus(arrival=arrival, minimum=tmin, depth=depth / level)


def delta_r2star(signal: np.ndarray, s0: np.ndarray, te_s: float) -> np.ndarray:
    """``-ln(S/S0)/TE`` in 1/s; non-positive signal is clipped to 0.1 % of S0 (noise floor)."""
    s0 = np.asarray(s0, dtype=signal.dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = signal / s0[..., None]
    ratio[~np.isfinite(ratio)] = 1.0
    np.clip(ratio, 1e-3, None, out=ratio)
    np.log(ratio, out=ratio)
    ratio *= -1.0 / te_s
    return ratio
