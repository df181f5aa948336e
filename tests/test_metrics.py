"""Per-case metrics against independent references (scikit-learn, scipy) and hand-made cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import dice as scipy_dice_dissimilarity
from sklearn.metrics import roc_auc_score

from tissuefate import metrics
from tissuefate.errors import InputError

# 2 mm isotropic RAS grid whose world x is 0 at voxel i = 5: i < 5 is the patient's left.
AFFINE_RAS = np.array([[2.0, 0, 0, -10.0], [0, 2.0, 0, -20.0], [0, 0, 2.0, -10.0], [0, 0, 0, 1]])
# Same grid stored LAS (x flipped): i < 5 is now the patient's right.
AFFINE_LAS = np.array([[-2.0, 0, 0, 10.0], [0, 2.0, 0, -20.0], [0, 0, 2.0, -10.0], [0, 0, 0, 1]])
SHAPE = (11, 12, 10)


def _case(seed: int = 0):
    rng = np.random.default_rng(seed)
    truth = np.zeros(SHAPE, bool)
    truth[1:4, 3:8, 2:7] = True  # left hemisphere (RAS)
    truth[8:10, 4:6, 4:6] = True  # a little on the right too
    # Rounded probabilities: many ties, as in real maps.
    prob = np.round(np.clip(rng.normal(0.3, 0.2, SHAPE) + 0.35 * truth, 0, 1), 2)
    coverage = np.ones(SHAPE, bool)
    coverage[:, :, 0] = False
    coverage[:, 0, :] = False
    return prob, truth, coverage


def test_voxel_volume_ml_from_affine():
    assert metrics.voxel_volume_ml(AFFINE_RAS) == pytest.approx(0.008)
    rot = np.eye(4)
    c, s = math.cos(0.3), math.sin(0.3)
    rot[:2, :2] = [[c, -s], [s, c]]
    assert metrics.voxel_volume_ml(rot @ np.diag([3.0, 3.0, 3.0, 1.0])) == pytest.approx(0.027)
    with pytest.raises(InputError):
        metrics.voxel_volume_ml(np.eye(3))


def test_hemispheres_follow_world_x_not_index_and_share_the_midline():
    left = metrics.hemisphere_mask(SHAPE, AFFINE_RAS, "left")
    right = metrics.hemisphere_mask(SHAPE, AFFINE_RAS, "right")
    assert left[4].all() and not left[6].any()
    assert right[6].all() and not right[4].any()
    assert left[5].all() and right[5].all()  # x == 0: in both
    assert (left | right).all()
    # Flipped storage: the same voxel index is now on the other side.
    assert metrics.hemisphere_mask(SHAPE, AFFINE_LAS, "left")[6].all()
    assert not metrics.hemisphere_mask(SHAPE, AFFINE_LAS, "left")[4].any()
    assert metrics.hemisphere_mask(SHAPE, AFFINE_RAS, "bilateral").all()
    with pytest.raises(InputError):
        metrics.hemisphere_mask(SHAPE, AFFINE_RAS, "L")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    labels = rng.random(500) < 0.2
    scores = np.round(rng.random(500) * 0.6 + 0.3 * labels, 1)  # heavy ties
    assert metrics.auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    binary = (scores > 0.5).astype(float)  # a thresholding "map"
    assert metrics.auc(binary, labels) == pytest.approx(roc_auc_score(labels, binary), abs=1e-12)


def test_auc_ipsilateral_matches_sklearn_on_the_region_and_ignores_the_rest():
    prob, truth, coverage = _case()
    x = metrics.world_x(SHAPE, AFFINE_RAS)
    region = coverage & (x <= 0)
    expected = roc_auc_score(truth[region], prob[region])
    got = metrics.auc_ipsilateral(prob, truth, coverage, "left", AFFINE_RAS)
    assert got == pytest.approx(expected, abs=1e-12)
    # Nothing outside the region counts: scramble the right hemisphere and uncovered voxels.
    scrambled = prob.copy()
    scrambled[~region] = 1.0 - scrambled[~region]
    assert metrics.auc_ipsilateral(scrambled, truth, coverage, "left", AFFINE_RAS) == pytest.approx(got, abs=1e-12)
    # Bilateral: the whole coverage.
    both = metrics.auc_ipsilateral(prob, truth, coverage, "bilateral", AFFINE_RAS)
    assert both == pytest.approx(roc_auc_score(truth[coverage], prob[coverage]), abs=1e-12)
    # Stored LAS, the "left" region is the other block of voxel indices.
    las = metrics.auc_ipsilateral(prob, truth, coverage, "left", AFFINE_LAS)
    region_las = coverage & (np.arange(SHAPE[0]) >= 5)[:, None, None]
    assert las == pytest.approx(roc_auc_score(truth[region_las], prob[region_las]), abs=1e-12)


def test_auc_undefined_without_both_classes():
    prob, truth, coverage = _case()
    empty = np.zeros(SHAPE, bool)
    assert math.isnan(metrics.auc_ipsilateral(prob, empty, coverage, "left", AFFINE_RAS))
    assert math.isnan(metrics.auc_ipsilateral(prob, np.ones(SHAPE, bool), coverage, "left", AFFINE_RAS))
    # Truth only on the right: empty on the stroke side -> NaN for "left".
    right_only = np.zeros(SHAPE, bool)
    right_only[8:10, 4:6, 4:6] = True
    assert math.isnan(metrics.auc_ipsilateral(prob, right_only, coverage, "left", AFFINE_RAS))
    bad = prob.copy()
    bad[2, 4, 4] = np.nan
    with pytest.raises(InputError):
        metrics.auc_ipsilateral(bad, truth, coverage, "left", AFFINE_RAS)


def test_predicted_lesion_threshold_is_inclusive_and_limited_to_coverage():
    prob = np.array([[[0.49999, 0.5, 0.9, 0.9]]])
    coverage = np.array([[[True, True, True, False]]])
    assert metrics.predicted_lesion(prob, coverage).tolist() == [[[False, True, True, False]]]


def test_dice_hand_case_and_scipy():
    pred = np.zeros(10, bool)
    true = np.zeros(10, bool)
    pred[:4] = True
    true[1:7] = True  # overlap 3, sizes 4 and 6
    assert metrics.dice(pred, true) == pytest.approx(0.6)
    rng = np.random.default_rng(3)
    a, b = rng.random(1000) < 0.3, rng.random(1000) < 0.4
    assert metrics.dice(a, b) == pytest.approx(1.0 - scipy_dice_dissimilarity(a, b))


def test_dice_edge_cases():
    empty = np.zeros(5, bool)
    some = np.array([1, 1, 0, 0, 0], bool)
    assert metrics.dice(some, empty) == 0.0  # prediction without truth
    assert metrics.dice(empty, some) == 0.0  # missed lesion
    assert math.isnan(metrics.dice(empty, empty))  # 0/0: undefined, left out of summaries


def test_mismatch_ratio_cap_and_edge_cases():
    assert metrics.mismatch_ratio(30.0, 10.0) == pytest.approx(3.0)
    assert metrics.mismatch_ratio(5.0, 10.0) == pytest.approx(0.5)  # no floor
    assert metrics.mismatch_ratio(300.0, 10.0) == 20.0
    assert metrics.mismatch_ratio(200.0, 10.0) == 20.0  # exactly at the cap
    assert metrics.mismatch_ratio(5.0, 0.0) == 20.0  # no core: the cap
    assert math.isnan(metrics.mismatch_ratio(0.0, 0.0))  # nothing at all: undefined
    assert metrics.mismatch_ratio(0.0, 4.0) == 0.0
    assert metrics.mismatch_ratio(300.0, 10.0, cap=50.0) == 30.0
    with pytest.raises(InputError):
        metrics.mismatch_ratio(-1.0, 2.0)
    row = metrics.mismatch_row(participant_id="sub-001", reperfusion_group="major", approach="pretraining",
                               tissue_at_risk_ml=12.0, core_ml=0.0)
    assert tuple(row) == metrics.MISMATCH_COLUMNS and row["mismatch_ratio"] == 20.0


def test_per_case_row_volumes_dice_and_coverage_rule():
    prob, truth, coverage = _case()
    row = metrics.per_case_row(participant_id="sub-003", target="ischemic_core", approach="separate", fold=2,
                               probability=prob, truth=truth, coverage=coverage, side="left", affine=AFFINE_RAS)
    assert tuple(row) == metrics.PER_CASE_COLUMNS
    pred = (prob >= 0.5) & coverage
    assert row["volume_pred_ml"] == pytest.approx(pred.sum() * 0.008)
    assert row["volume_true_ml"] == pytest.approx(truth.sum() * 0.008)  # whole infarct by default
    assert row["volume_diff_ml"] == pytest.approx((pred.sum() - truth.sum()) * 0.008)
    assert row["abs_volume_diff_ml"] == pytest.approx(abs(row["volume_diff_ml"]))
    assert row["dice"] == pytest.approx(1.0 - scipy_dice_dissimilarity(pred.ravel(), truth.ravel()))
    assert row["auc"] == pytest.approx(metrics.auc_ipsilateral(prob, truth, coverage, "left", AFFINE_RAS))
    # Infarct outside the coverage: counted by default, dropped on request.
    truth_out = truth.copy()
    truth_out[2, 5, 0] = True  # slice 0 is not covered
    kw = dict(participant_id="sub-003", target="ischemic_core", approach="separate", fold=2,
              probability=prob, coverage=coverage, side="left", affine=AFFINE_RAS)
    whole = metrics.per_case_row(truth=truth_out, **kw)
    inside = metrics.per_case_row(truth=truth_out, truth_within_coverage=True, **kw)
    assert whole["volume_true_ml"] - inside["volume_true_ml"] == pytest.approx(0.008)


def test_per_case_row_empty_prediction_and_empty_truth():
    _, truth, coverage = _case()
    kw = dict(participant_id="sub-001", target="tissue_at_risk", approach="thresholding", fold=None,
              coverage=coverage, side="left", affine=AFFINE_RAS)
    empty_pred = metrics.per_case_row(probability=np.zeros(SHAPE), truth=truth, **kw)
    assert empty_pred["dice"] == 0.0 and empty_pred["volume_pred_ml"] == 0.0
    assert empty_pred["auc"] == pytest.approx(0.5)  # one constant score: chance
    assert empty_pred["volume_diff_ml"] == pytest.approx(-truth.sum() * 0.008)
    both = metrics.per_case_row(probability=np.zeros(SHAPE), truth=np.zeros(SHAPE, bool), **kw)
    assert math.isnan(both["dice"]) and math.isnan(both["auc"])
    assert both["volume_diff_ml"] == 0.0 and both["abs_volume_diff_ml"] == 0.0
    no_truth = metrics.per_case_row(probability=np.ones(SHAPE), truth=np.zeros(SHAPE, bool), **kw)
    assert no_truth["dice"] == 0.0 and math.isnan(no_truth["auc"])
    with pytest.raises(InputError):
        metrics.per_case_row(probability=np.zeros(SHAPE), truth=np.zeros((2, 2, 2), bool), **kw)


def test_frames_sort_in_the_study_order():
    rows = [
        {"participant_id": p, "target": t, "approach": a, "fold": 1, "auc": 0.5, "dice": 0.5,
         "volume_pred_ml": 1.0, "volume_true_ml": 1.0, "volume_diff_ml": 0.0, "abs_volume_diff_ml": 0.0}
        for t in ("ischemic_core", "tissue_at_risk") for a in ("thresholding", "separate", "pretraining")
        for p in ("sub-010", "sub-002")
    ]
    df = metrics.per_case_frame(rows)
    assert list(df.columns) == list(metrics.PER_CASE_COLUMNS)
    assert list(df["target"].iloc[[0, -1]]) == ["tissue_at_risk", "ischemic_core"]
    assert list(df["approach"].iloc[:6]) == ["pretraining"] * 2 + ["separate"] * 2 + ["thresholding"] * 2
    assert list(df["participant_id"].iloc[:2]) == ["sub-002", "sub-010"]
    m = metrics.mismatch_frame([
        metrics.mismatch_row(participant_id="sub-1", reperfusion_group=g, approach=a, tissue_at_risk_ml=2, core_ml=1)
        for g in ("major", "minimal") for a in ("thresholding", "pretraining")])
    assert list(m["reperfusion_group"]) == ["minimal", "minimal", "major", "major"]
    assert list(m["approach"]) == ["pretraining", "thresholding"] * 2
