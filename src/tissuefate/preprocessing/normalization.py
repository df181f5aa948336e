"""Everything done to the maps once they are in MNI space (METHOD.md section 4): the brain and
coverage masks, the parenchymal-mean normalization, the Tmax > 6 s and ADC < 620 masks,
and the stroke side. Plain numpy on arrays of one grid, so each piece is tested alone.

What counts as parenchyma (ours; the paper does not say): brain voxels with both diffusion
and perfusion data (the coverage mask) where the template's grey + white matter
probability is at least ``tissue_min_probability`` (removes the template's ventricles and
sulci), minus the patient's own CSF (ADC above ``csf_adc_min_um2_per_s``: atrophy makes
ventricles larger than the template's), minus the acute lesion (Tmax > 6 s or
ADC < 620 x 10^-6 mm^2/s). The mean is therefore the mean of normal-appearing tissue, so a
large stroke does not change the scale of its own patient's maps.
"""

from __future__ import annotations

import numpy as np

from tissuefate.config import section_defaults
from tissuefate.measures import voxel_volume_ml

_PRE = section_defaults("preprocessing")
_TMAX_S = section_defaults("cohort")["tmax_threshold_s"]


def coverage_mask(brain: np.ndarray, diffusion_fov: np.ndarray, perfusion_fov: np.ndarray | None) -> np.ndarray:
    """Brain voxels with diffusion and (when there is any) perfusion data."""
    cov = (brain > 0) & (diffusion_fov > 0)
    if perfusion_fov is not None:
        cov &= perfusion_fov > 0
    return cov


def threshold_masks(
    tmax_s: np.ndarray | None,
    adc_um2_per_s: np.ndarray,
    coverage: np.ndarray,
    *,
    tmax_threshold_s: float = _TMAX_S,
    adc_threshold_um2_per_s: float = _PRE["adc_threshold_um2_per_s"],
    adc_min_valid_um2_per_s: float = _PRE["adc_min_valid_um2_per_s"],
) -> tuple[np.ndarray | None, np.ndarray]:
    """The two absolute-value channels: Tmax > 6 s and ADC < 620 x 10^-6 mm^2/s.

    ADC below ``adc_min_valid`` is background or a masked voxel, not restricted diffusion."""
    cov = coverage > 0
    adc = cov & (adc_um2_per_s < adc_threshold_um2_per_s) & (adc_um2_per_s > adc_min_valid_um2_per_s)
    tmax = None if tmax_s is None else cov & (tmax_s > tmax_threshold_s)
    return tmax, adc


def parenchyma_mask(
    coverage: np.ndarray,
    tissue_probability: np.ndarray,
    adc_um2_per_s: np.ndarray,
    lesion: np.ndarray,
    *,
    tissue_min_probability: float = 0.5,
    csf_adc_min_um2_per_s: float = _PRE["csf_adc_min_um2_per_s"],
    adc_min_valid_um2_per_s: float = _PRE["adc_min_valid_um2_per_s"],
) -> np.ndarray:
    """Normal-appearing parenchyma (see the module docstring)."""
    return (
        (coverage > 0)
        & (tissue_probability >= tissue_min_probability)
        & (adc_um2_per_s > adc_min_valid_um2_per_s)
        & (adc_um2_per_s < csf_adc_min_um2_per_s)
        & ~(lesion > 0)
    )


def parenchymal_mean(data: np.ndarray, parenchyma: np.ndarray) -> float:
    """Mean of ``data`` over the parenchyma; ValueError when there is none or it is not positive."""
    values = data[parenchyma > 0]
    if values.size == 0:
        raise ValueError("no parenchyma voxels")
    mean = float(values.mean())
    if not np.isfinite(mean) or mean <= 0:
        raise ValueError(f"parenchymal mean is {mean:g} (must be positive)")
    return mean


def normalize_map(data: np.ndarray, parenchyma: np.ndarray, coverage: np.ndarray) -> tuple[np.ndarray, float]:
    """``data`` divided by its parenchymal mean, zero outside the coverage mask."""
    mean = parenchymal_mean(data, parenchyma)
    return np.where(coverage > 0, data / mean, 0.0).astype(np.float32), mean


def stroke_side(
    lesion: np.ndarray,
    affine: np.ndarray,
    *,
    bilateral_min_fraction: float = _PRE["bilateral_min_fraction"],
) -> tuple[str | None, float, float]:
    """Left, right or bilateral from a lesion mask in MNI space (x < 0 is left).

    Bilateral when the smaller side holds at least ``bilateral_min_fraction`` of the lesion.
    Voxels on the midline count for neither side. Returns (side or None when there is no
    lesion, left mL, right mL)."""
    ijk = np.argwhere(lesion > 0)
    if ijk.size == 0:
        return None, 0.0, 0.0
    x = ijk @ affine[0, :3] + affine[0, 3]
    voxel_ml = voxel_volume_ml(affine)
    left, right = float((x < 0).sum() * voxel_ml), float((x > 0).sum() * voxel_ml)
    total = left + right
    if total == 0:
        return None, 0.0, 0.0
    if min(left, right) >= bilateral_min_fraction * total:
        return "bilateral", left, right
    return ("left" if left > right else "right"), left, right


def remove_small_clusters(mask: np.ndarray, affine: np.ndarray, min_ml: float) -> np.ndarray:
    """Keep the 26-connected clusters of at least ``min_ml``."""
    from scipy import ndimage

    mask = mask > 0
    if min_ml <= 0 or not mask.any():
        return mask
    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    sizes = ndimage.sum(mask, labels, index=np.arange(1, n + 1)) * voxel_volume_ml(affine)
    return np.isin(labels, 1 + np.flatnonzero(sizes >= min_ml))


def binarize_preserving_volume(fraction: np.ndarray, min_fraction: float = 0.2) -> np.ndarray:
    """A mask from a linearly resampled binary mask that keeps its volume.

    Thresholding the resampled mask at 0.5 (what nearest-neighbour or generic-label
    interpolation amount to) rounds a lesion's convex edges off at every resampling: about
    10 % of the volume after FLAIR -> DWI -> MNI at 3 mm. The sum of the resampled fractions
    is the lesion's volume in the new grid; the ``round(sum)`` voxels of largest fraction
    (never below ``min_fraction``) keep it."""
    f = np.asarray(fraction, dtype=np.float64)
    k = int(round(float(f[f > 0].sum())))
    if k <= 0:
        return np.zeros(f.shape, bool)
    from scipy import ndimage

    # Ties (common after a resampling by a regular sub-voxel shift) are broken by the
    # neighbourhood: a voxel among lesion voxels goes in before one at a corner.
    score = (f + 1e-4 * ndimage.gaussian_filter(f, 1.0)).ravel()
    kth = np.partition(score, score.size - k)[score.size - k]
    return (score >= kth).reshape(f.shape) & (f >= min_fraction)


def volume_ml(mask: np.ndarray, affine: np.ndarray) -> float:
    return float((mask > 0).sum() * voxel_volume_ml(affine))
