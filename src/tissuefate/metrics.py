"""Per-patient evaluation of a predicted lesion against the final infarct (METHOD.md section 8).

Every function works on numpy arrays already in MNI space whose axes are ordered like RAS+
(the first axis runs from the patient's left to right). Definitions and edge cases are in
docs/statistics.md; in short:

- AUC of the probability map within the perfusion/diffusion coverage and the stroke-side
  hemisphere (both hemispheres for bilateral strokes); NaN when the truth there is empty or full.
- The predicted lesion is ``probability >= 0.5`` inside the coverage (no model input outside it).
- Dice: 0 when exactly one of prediction and truth is empty, NaN when both are.
- Volumes in mL; volume difference = predicted - true.
- Mismatch ratio = tissue-at-risk volume / core volume, capped at 20; NaN when both are 0.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import pandas as pd

from tissuefate.errors import InputError
from tissuefate.measures import dice, voxel_volume_ml  # noqa: F401  (part of this module's API)
from tissuefate.names import APPROACHES, REPERFUSION_GROUPS, TARGETS

PROBABILITY_THRESHOLD = 0.5
MISMATCH_RATIO_CAP = 20.0
SIDES = ("left", "right", "bilateral")

PER_CASE_COLUMNS = (
    "participant_id",
    "target",
    "approach",
    "fold",
    "auc",
    "dice",
    "volume_pred_ml",
    "volume_true_ml",
    "volume_diff_ml",
    "abs_volume_diff_ml",
)
MISMATCH_COLUMNS = (
    "participant_id",
    "reperfusion_group",
    "approach",
    "tissue_at_risk_ml",
    "core_ml",
    "mismatch_ratio",
)

# Rows are written in the study's order, not alphabetically (then by participant).
TARGET_ORDER = TARGETS
APPROACH_ORDER = APPROACHES
REPERFUSION_GROUP_ORDER = REPERFUSION_GROUPS


# --- geometry -------------------------------------------------------------------------


def world_x(shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    """World (RAS, mm) x coordinate of every voxel centre of a 3-D grid."""
    affine = np.asarray(affine, dtype=float)
    if len(shape) != 3:
        raise InputError(f"expected a 3-D image, got shape {tuple(shape)}")
    i, j, k = (np.arange(n, dtype=float) for n in shape)
    a = affine[0]
    return a[0] * i[:, None, None] + a[1] * j[None, :, None] + a[2] * k[None, None, :] + a[3]


def hemisphere_mask(shape: tuple[int, ...], affine: np.ndarray, side: str) -> np.ndarray:
    """Voxels of the stroke-side hemisphere: RAS x < 0 is the patient's left.

    The midline plane (x == 0) belongs to both hemispheres so that no lesion voxel on it is
    lost; ``bilateral`` is the whole grid.
    """
    if side not in SIDES:
        raise InputError(f"stroke side {side!r} is not one of {SIDES}", fix="record left, right or bilateral")
    if side == "bilateral":
        return np.ones(shape, dtype=bool)
    x = world_x(shape, affine)
    return x <= 0 if side == "left" else x >= 0


# --- per-voxel measures ----------------------------------------------------------------


def _as_bool(mask: np.ndarray, name: str, shape: tuple[int, ...]) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise InputError(f"{name} has shape {mask.shape}, the probability map {shape}")
    return mask.astype(bool)


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve as the Mann-Whitney probability P(score+ > score-) + P(=)/2.

    NaN when the labels hold only one class (the AUC is undefined).
    """
    scores = np.asarray(scores, dtype=float).ravel()
    labels = np.asarray(labels).astype(bool).ravel()
    if scores.shape != labels.shape:
        raise InputError(f"{scores.size} scores but {labels.size} labels")
    if not np.all(np.isfinite(scores)):
        raise InputError("the probability map has non-finite values inside the evaluation mask")
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    # Average ranks give tied scores half credit, as the trapezoidal ROC area does.
    from scipy.stats import rankdata  # here: scipy.stats costs ~1 CPU s to import in every per-patient job

    ranks = rankdata(scores, method="average")
    rank_sum_pos = float(ranks[labels].sum())
    return (rank_sum_pos - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def auc_ipsilateral(
    probability: np.ndarray,
    truth: np.ndarray,
    coverage: np.ndarray,
    side: str,
    affine: np.ndarray,
) -> float:
    """AUC of ``probability`` against ``truth`` within coverage and the stroke-side hemisphere."""
    probability = np.asarray(probability, dtype=float)
    shape = probability.shape
    truth = _as_bool(truth, "the truth mask", shape)
    coverage = _as_bool(coverage, "the coverage mask", shape)
    region = coverage & hemisphere_mask(shape, affine, side)
    return auc(probability[region], truth[region])


def predicted_lesion(
    probability: np.ndarray, coverage: np.ndarray | None = None, threshold: float = PROBABILITY_THRESHOLD
) -> np.ndarray:
    """Binary prediction: probability >= threshold, and only where the model had input."""
    probability = np.asarray(probability, dtype=float)
    lesion = probability >= threshold
    if coverage is not None:
        lesion &= _as_bool(coverage, "the coverage mask", probability.shape)
    return lesion


def lesion_volume_ml(mask: np.ndarray, voxel_ml: float) -> float:
    """Volume of a binary mask in mL."""
    return float(np.count_nonzero(np.asarray(mask).astype(bool))) * float(voxel_ml)


def volume_difference_ml(volume_pred_ml: float, volume_true_ml: float) -> tuple[float, float]:
    """(predicted - true, |predicted - true|) in mL."""
    diff = float(volume_pred_ml) - float(volume_true_ml)
    return diff, abs(diff)


def mismatch_ratio(tissue_at_risk_ml: float, core_ml: float, cap: float = MISMATCH_RATIO_CAP) -> float:
    """Tissue-at-risk volume / core volume, capped at ``cap`` (paper: 20).

    A core of 0 with tissue at risk gives the cap (the paper caps "small or no" cores); both 0
    gives NaN: there is no mismatch to speak of, and reporting the maximal ratio for a patient
    with no tissue at risk would invert its clinical meaning.
    """
    tar, core = float(tissue_at_risk_ml), float(core_ml)
    if not (math.isfinite(tar) and math.isfinite(core)) or tar < 0 or core < 0:
        raise InputError(f"volumes must be finite and non-negative, got tissue at risk {tar} mL and core {core} mL")
    if core == 0.0:
        return math.nan if tar == 0.0 else float(cap)
    return min(tar / core, float(cap))


# --- table rows ------------------------------------------------------------------------


def per_case_row(
    *,
    participant_id: str,
    target: str,
    approach: str,
    fold: int | None,
    probability: np.ndarray,
    truth: np.ndarray,
    coverage: np.ndarray,
    side: str,
    affine: np.ndarray,
    threshold: float = PROBABILITY_THRESHOLD,
    truth_within_coverage: bool = False,
) -> dict[str, Any]:
    """One row of ``per_case.tsv`` for one test patient, target and approach.

    ``truth_within_coverage=False`` (default) keeps the whole final infarct as the truth for
    Dice and volumes, so infarct outside the perfusion coverage counts as missed; AUC is always
    restricted to coverage and the stroke-side hemisphere.
    """
    probability = np.asarray(probability, dtype=float)
    shape = probability.shape
    truth_mask = _as_bool(truth, "the truth mask", shape)
    coverage_mask = _as_bool(coverage, "the coverage mask", shape)
    voxel_ml = voxel_volume_ml(affine)
    pred = predicted_lesion(probability, coverage_mask, threshold)
    true = truth_mask & coverage_mask if truth_within_coverage else truth_mask
    volume_pred = lesion_volume_ml(pred, voxel_ml)
    volume_true = lesion_volume_ml(true, voxel_ml)
    diff, abs_diff = volume_difference_ml(volume_pred, volume_true)
    return {
        "participant_id": participant_id,
        "target": target,
        "approach": approach,
        "fold": fold,
        "auc": auc_ipsilateral(probability, truth_mask, coverage_mask, side, affine),
        "dice": dice(pred, true),
        "volume_pred_ml": volume_pred,
        "volume_true_ml": volume_true,
        "volume_diff_ml": diff,
        "abs_volume_diff_ml": abs_diff,
    }


def mismatch_row(
    *,
    participant_id: str,
    reperfusion_group: str,
    approach: str,
    tissue_at_risk_ml: float,
    core_ml: float,
    cap: float = MISMATCH_RATIO_CAP,
) -> dict[str, Any]:
    """One row of ``mismatch.tsv``."""
    return {
        "participant_id": participant_id,
        "reperfusion_group": reperfusion_group,
        "approach": approach,
        "tissue_at_risk_ml": float(tissue_at_risk_ml),
        "core_ml": float(core_ml),
        "mismatch_ratio": mismatch_ratio(tissue_at_risk_ml, core_ml, cap),
    }


def _order_key(values: pd.Series, order: tuple[str, ...]) -> pd.Series:
    # Known labels first in the study's order, anything else after them alphabetically.
    rank = {name: i for i, name in enumerate(order)}
    ordered = sorted(set(values.astype(str)), key=lambda v: (rank.get(v, len(order)), v))
    position = {v: i for i, v in enumerate(ordered)}
    return values.astype(str).map(position)


def sort_rows(df: pd.DataFrame, orders: Mapping[str, tuple[str, ...]], then: tuple[str, ...] = ()) -> pd.DataFrame:
    """Sort by categorical columns in the study's order, then by ``then`` columns; new index."""
    keys = list(orders) + [c for c in then if c not in orders]
    return df.sort_values(
        keys,
        key=lambda s: _order_key(s, orders[s.name]) if s.name in orders else s.astype(str),
        kind="mergesort",
    ).reset_index(drop=True)


def per_case_frame(rows: list[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows of ``per_case_row`` as a table: fixed columns, sorted by target, approach, participant."""
    df = pd.DataFrame(list(rows), columns=list(PER_CASE_COLUMNS))
    df["fold"] = df["fold"].astype("Int64")
    return sort_rows(df, {"target": TARGET_ORDER, "approach": APPROACH_ORDER}, ("participant_id",))


def mismatch_frame(rows: list[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows of ``mismatch_row`` as a table sorted by group, approach, participant."""
    df = pd.DataFrame(list(rows), columns=list(MISMATCH_COLUMNS))
    return sort_rows(
        df, {"reperfusion_group": REPERFUSION_GROUP_ORDER, "approach": APPROACH_ORDER}, ("participant_id",)
    )
