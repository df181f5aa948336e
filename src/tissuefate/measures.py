"""Measures on masks and grids used by several stages: Dice overlap and voxel volume.

One definition each, so that evaluation, registration QC, training and the cohort agree.
"""

from __future__ import annotations

import math

import numpy as np

from tissuefate.errors import InputError


def dice_from_counts(tp, fp, fn, empty: float = math.nan):
    """Dice 2 TP / (2 TP + FP + FN) from voxel counts (scalars or arrays); ``empty`` where
    prediction and truth are both empty (NaN for evaluation, 1 for a training curve)."""
    tp, fp, fn = (np.asarray(v) for v in (tp, fp, fn))
    denom = 2 * tp + fp + fn
    out = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), empty)
    return float(out) if out.ndim == 0 else out


def dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Dice coefficient 2|P∩T| / (|P| + |T|) of two binary masks; NaN when both are empty."""
    prediction = np.asarray(prediction).astype(bool)
    truth = np.asarray(truth)
    if truth.shape != prediction.shape:
        raise InputError(f"the truth mask has shape {truth.shape}, the prediction {prediction.shape}")
    truth = truth.astype(bool)
    tp = int(np.logical_and(prediction, truth).sum())
    return dice_from_counts(tp, int(prediction.sum()) - tp, int(truth.sum()) - tp)


def voxel_volume_ml(affine_or_image) -> float:
    """Volume of one voxel in mL (1 mL = 1000 mm^3) from a 4x4 voxel-to-world affine in mm
    (or an image with an ``affine``)."""
    affine = np.asarray(getattr(affine_or_image, "affine", affine_or_image), dtype=float)
    if affine.shape != (4, 4):
        raise InputError(f"the affine has shape {affine.shape}, not (4, 4)")
    return float(abs(np.linalg.det(affine[:3, :3])) / 1000.0)
