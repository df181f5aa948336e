"""Automatic arterial input function (AIF) in the style of Mouridsen et al. (MRM 2006;55:524-531).

Candidate voxels are those with a high Delta R2* peak; their curves, normalised to unit area,
are split by k-means and the cluster that is narrowest and earliest (highest normalised peak
over the first moment after the bolus arrival) among those that peak before the brain's mean
curve is kept; the clustering is repeated on that
cluster. The AIF is the mean curve of the final cluster. A user may instead give the
AIF voxels (a mask or a list of voxel indices).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Keep the 5 % of voxels with the highest peak (Mouridsen 2006 keeps the largest areas, which on
# the moyamoya series favours the broad curves of veins and sinuses); 5 clusters, clustering run
# twice (Mouridsen 2006). Mouridsen's roughness filter (drop the 25 % most irregular curves) is
# off by default: on real 2 s frames it removed the narrow arterial curves first.
PEAK_KEEP_FRACTION = 0.05
ROUGHNESS_DROP_FRACTION = 0.0
N_CLUSTERS = 5
N_ROUNDS = 2
MIN_AIF_VOXELS = 3
# The AIF peak must stand this much above the brain's mean tissue peak (arteries carry all the blood).
MIN_PEAK_RATIO = 2.0
# Fallback when the clustered AIF is refused: voxels with at least this fraction of the highest early peak.
FALLBACK_PEAK_FRACTION = 0.5
# ... and the fallback must stand this far above the tissue (a few pure arterial voxels: ~60 x in the simulation).
FALLBACK_MIN_PEAK_RATIO = 5.0


class AIFError(ValueError):
    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix


@dataclass
class AIF:
    curve: np.ndarray  # Delta R2* (1/s), one value per kept frame
    voxels: np.ndarray  # (n, 3) voxel indices (i, j, k) of the AIF
    method: str  # "automatic" or "user"


def first_moment(curves: np.ndarray, times: np.ndarray) -> np.ndarray:
    """``M1 = sum t C(t) / sum C(t)`` per row: the mean arrival time of a curve."""
    positive = np.clip(curves, 0, None)
    area = positive.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(area > 0, (positive * times).sum(axis=1) / area, np.inf)


def roughness(curves: np.ndarray) -> np.ndarray:
    """Irregularity index: sum of squared second differences over the squared area."""
    area = np.clip(curves, 0, None).sum(axis=1)
    second = np.diff(curves, n=2, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(area > 0, (second**2).sum(axis=1) / area**2, np.inf)


def kmeans(data: np.ndarray, k: int, order: np.ndarray, n_iter: int = 50) -> np.ndarray:
    """Plain k-means (Lloyd) with a deterministic start: the centres are the rows at the
    k quantiles of ``order`` (no random seed, same result on every run)."""
    n = data.shape[0]
    k = min(k, n)
    ranks = np.argsort(order, kind="stable")
    centres = data[ranks[((np.arange(k) + 0.5) * n / k).astype(int)]].copy()
    labels = np.full(n, -1)
    for _ in range(n_iter):
        dist = ((data[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
        new = np.argmin(dist, axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
        for c in range(k):
            if np.any(labels == c):
                centres[c] = data[labels == c].mean(axis=0)
    return labels


def select_aif(
    curves: np.ndarray,
    index: np.ndarray,
    times: np.ndarray,
    tissue_curve: np.ndarray | None = None,
    arrival_s: float = 0.0,
) -> AIF:
    """Automatic AIF among candidate voxels: ``curves`` (voxels, T) of Delta R2*, ``index``
    (voxels, 3) their voxel indices; ``tissue_curve`` the brain's mean (default: of ``curves``)."""
    if tissue_curve is None:
        tissue_curve = curves.mean(axis=0)
    tissue_peak_s = times[int(np.argmax(tissue_curve))]
    if index.shape[0] < MIN_AIF_VOXELS * 10:
        raise AIFError(
            f"only {index.shape[0]} voxels to search for an artery",
            "check the brain coverage of the series, or give the AIF voxels yourself (--aif-mask)",
        )
    peak = curves.max(axis=1)
    keep = peak >= np.quantile(peak, 1.0 - PEAK_KEEP_FRACTION)
    index, curves = index[keep], curves[keep]
    all_index, all_curves = index, curves
    if ROUGHNESS_DROP_FRACTION > 0:
        rough = roughness(curves)
        keep = rough <= np.quantile(rough, 1.0 - ROUGHNESS_DROP_FRACTION)
        index, curves = index[keep], curves[keep]
    for _ in range(N_ROUNDS):
        if curves.shape[0] < MIN_AIF_VOXELS * 2:
            break
        area = np.clip(curves, 0, None).sum(axis=1, keepdims=True)
        normalised = curves / np.where(area > 0, area, 1.0)
        m1 = first_moment(curves, times)
        labels = kmeans(normalised, N_CLUSTERS, m1)
        peak_height = curves.max(axis=1)
        # Arterial cluster: narrow (high peak once normalised to unit area) and early (small
        # first moment after the bolus arrival): the largest peak / (M1 - arrival).
        scores = np.full(labels.max() + 1, -np.inf)
        for c in range(labels.max() + 1):
            members = labels == c
            # An artery fills before the tissue it feeds: a cluster peaking with or after the
            # brain's mean curve is a vein or tissue, whatever its shape.
            early = times[int(np.argmax(curves[members].mean(axis=0)))] < tissue_peak_s if members.any() else False
            if members.sum() >= MIN_AIF_VOXELS and early:
                delay = max(float(np.mean(m1[members])) - arrival_s, times[1] - times[0])
                # Weighted by the cluster's mean peak height: blood carries all the tracer, so
                # a few arterial voxels outrank the many early, narrow tissue curves near them.
                scores[c] = normalised[members].mean(axis=0).max() / delay * float(peak_height[members].mean())
        if not np.isfinite(scores).any():
            break  # no early cluster in this round: keep the previous round's cluster
        chosen = int(np.argmax(scores))
        index, curves = index[labels == chosen], curves[labels == chosen]
    aif = curves.mean(axis=0, dtype=np.float64)
    try:
        check_arterial(aif, tissue_curve, times)
    except AIFError:
        # The shape clusters hid a few arterial voxels among early tissue curves: fall back on
        # the highest peaks among all candidates (below).
        fallback = _highest_peaks(all_curves, all_index, times, tissue_peak_s)
        if fallback is None:
            raise
        aif, index = fallback
        check_arterial(aif, tissue_curve, times, min_peak_ratio=FALLBACK_MIN_PEAK_RATIO)
    return AIF(curve=aif, voxels=index, method="automatic")


def _highest_peaks(curves: np.ndarray, index: np.ndarray, times: np.ndarray, tissue_peak_s: float):
    """Fallback AIF: the voxels peaking before the tissue whose peak is at least
    ``FALLBACK_PEAK_FRACTION`` of the highest such peak (a coherent group of arterial voxels
    stands far above tissue); None when fewer than MIN_AIF_VOXELS qualify."""
    early = times[np.argmax(curves, axis=1)] < tissue_peak_s
    if not early.any():
        return None
    peak = curves.max(axis=1)
    keep = early & (peak >= FALLBACK_PEAK_FRACTION * peak[early].max())
    if keep.sum() < MIN_AIF_VOXELS:
        return None
    return curves[keep].mean(axis=0, dtype=np.float64), index[keep]


def check_arterial(aif: np.ndarray, tissue: np.ndarray, times: np.ndarray,
                   min_peak_ratio: float = MIN_PEAK_RATIO) -> None:
    """Refuse an 'AIF' that is not artery-like: it must peak well above the tissue's mean curve, and not after it."""
    peak_ratio = float(aif.max() / tissue.max()) if tissue.max() > 0 else np.inf
    if not np.isfinite(aif).all() or aif.max() <= 0 or peak_ratio < min_peak_ratio:
        raise AIFError(
            f"no arterial candidate: the best curve peaks only {peak_ratio:.2f} x the tissue mean "
            f"(at least {min_peak_ratio:g} expected)",
            "check that the slab covers a large artery (middle cerebral, internal carotid) "
            "or give the AIF voxels yourself (--aif-mask)",
        )
    if times[int(np.argmax(aif))] >= times[int(np.argmax(tissue))]:
        raise AIFError(
            "no arterial candidate: the best curve does not peak before the tissue",
            "check that the slab covers a large artery or give the AIF voxels yourself (--aif-mask)",
        )


def user_aif(curves: np.ndarray, index: np.ndarray) -> AIF:
    """The AIF as the mean curve of user-given voxels (``curves`` (voxels, T), ``index`` (voxels, 3))."""
    if index.shape[0] == 0:
        raise AIFError("the AIF mask holds no voxel", "draw the AIF voxels in an artery of the DSC series' grid")
    return AIF(curve=curves.mean(axis=0, dtype=np.float64), voxels=index, method="user")
