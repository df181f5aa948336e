"""The clinical thresholding approach: scores whose 0.5 level is the clinical mask."""

from __future__ import annotations

import numpy as np
import pytest

from tissuefate.errors import InputError
from tissuefate.io import derivatives
from tissuefate.io.nifti import save_image
from tissuefate.thresholding import (
    TARGETS,
    ThresholdingSettings,
    core_score,
    threshold_participant,
    threshold_scores,
    thresholding_path,
    tmax_score,
)


def _auc(score: np.ndarray, truth: np.ndarray) -> float:
    """Mann-Whitney AUC (reference implementation, ties count half)."""
    pos, neg = score[truth], score[~truth]
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (pos.size * neg.size))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_score_is_above_half_exactly_where_the_clinical_mask_is(rng):
    tmax = rng.uniform(0, 20, 5000)
    adc = rng.uniform(150, 1500, 5000)
    cov = np.ones(5000, bool)
    s = threshold_scores(tmax, adc, cov)
    assert ((s["ischemic_core"] > 0.5) == (adc < 620)).all()
    assert ((s["tissue_at_risk"] > 0.5) == ((tmax > 6) | (adc < 620))).all()
    for v in s.values():
        assert v.dtype == np.float32 and v.min() >= 0 and v.max() <= 1


def test_thresholds_are_strict():
    assert core_score(np.array([620.0]))[0] == 0.5  # ADC < 620: 620 itself is not core
    assert tmax_score(np.array([6.0]))[0] == 0.5


def test_core_auc_does_not_depend_on_the_scale(rng):
    adc = rng.normal(800, 150, 2000)
    truth = adc + rng.normal(0, 150, 2000) < 600
    cov = np.ones_like(truth)
    aucs = [_auc(threshold_scores(None, adc, cov, ThresholdingSettings(adc_scale_um2_per_s=s))["ischemic_core"], truth) for s in (10.0, 75.0, 500.0)]
    assert aucs[0] == pytest.approx(aucs[1], abs=2e-3) and aucs[1] == pytest.approx(aucs[2], abs=1e-9)
    assert aucs[1] > 0.8


def test_tissue_at_risk_is_the_fuzzy_union():
    s = threshold_scores(np.array([10.0, 1.0, 1.0]), np.array([800.0, 400.0, 800.0]), np.ones(3, bool))
    assert s["tissue_at_risk"][0] == pytest.approx(float(tmax_score(np.array([10.0]))[0]))
    assert s["tissue_at_risk"][1] == pytest.approx(float(core_score(np.array([400.0]))[0]))
    assert s["tissue_at_risk"][2] < 0.5


def test_outside_coverage_background_and_dark_dwi_score_zero():
    tmax = np.array([10.0, 10.0, 1.0, 1.0])
    adc = np.array([400.0, 400.0, 50.0, 400.0])  # 50: background
    cov = np.array([0, 1, 1, 1], bool)
    dwi = np.array([2.0, 2.0, 0.1, 0.5])  # 0.5: darker than tissue, a partial-volume rim
    s = threshold_scores(tmax, adc, cov, dwi_normalized=dwi)
    assert s["tissue_at_risk"][0] == 0 and s["ischemic_core"][0] == 0
    assert s["ischemic_core"][1] > 0.5
    assert s["ischemic_core"][2] == 0 and s["ischemic_core"][3] == 0
    assert "tissue_at_risk" not in threshold_scores(None, adc, cov)


def test_settings_come_from_the_config_sections():
    s = ThresholdingSettings.from_config(
        {"cohort": {"tmax_threshold_s": 4.0}, "preprocessing": {"adc_threshold_um2_per_s": 600}, "thresholding": {"tmax_scale_s": 1.0}}
    )
    assert (s.tmax_threshold_s, s.adc_threshold_um2_per_s, s.tmax_scale_s) == (4.0, 600.0, 1.0)
    with pytest.raises(ValueError):
        ThresholdingSettings.from_config({"thresholding": {"adc_scale_um2_per_s": 0}})


def _write_preprocessed(results, label, rng, with_tmax=True):
    """A tiny participant as the preprocessing stage leaves it, masks included."""
    a = np.diag([2.0, 2.0, 2.0, 1.0])
    shape = (12, 10, 8)
    cov = np.zeros(shape, bool)
    cov[1:-1, 1:-1, 1:-1] = True
    adc = np.where(cov, rng.uniform(300, 1200, shape), 0).astype(np.float32)
    tmax = np.where(cov, rng.uniform(0, 12, shape), 0).astype(np.float32)
    dwi = np.where(cov, rng.uniform(0.5, 2.0, shape), 0).astype(np.float32)
    save_image(adc, a, derivatives.preproc_map(results, label, "ADC", "preproc"))
    save_image(dwi, a, derivatives.preproc_map(results, label, "DWI", "normalized"))
    save_image(cov, a, derivatives.preproc_mask(results, label, "coverage"), dtype=np.uint8)
    if with_tmax:
        save_image(tmax, a, derivatives.preproc_map(results, label, "Tmax", "preproc"))
    # The masks exactly as derive_mni_maps makes them.
    adc620 = cov & (adc < 620) & (adc > 100) & (dwi >= 1.0)
    return cov & (tmax > 6.0), adc620


def test_threshold_participant_reproduces_the_preprocessing_masks(tmp_path, rng):
    import nibabel as nib

    tmax6, adc620 = _write_preprocessed(tmp_path, "001", rng)
    out = threshold_participant("001", tmp_path, {})
    assert set(out) == set(TARGETS) and out["ischemic_core"] == thresholding_path(tmp_path, "001", "ischemic_core")
    core = nib.load(str(out["ischemic_core"])).get_fdata()
    tar = nib.load(str(out["tissue_at_risk"])).get_fdata()
    assert ((core > 0.5) == adc620).all()
    assert ((tar > 0.5) == (tmax6 | adc620)).all()


def test_tissue_at_risk_needs_perfusion(tmp_path, rng):
    _write_preprocessed(tmp_path, "002", rng, with_tmax=False)
    with pytest.raises(InputError, match="no perfusion"):
        threshold_participant("002", tmp_path, {})
    assert set(threshold_participant("002", tmp_path, {}, targets=("ischemic_core",))) == {"ischemic_core"}


def test_missing_preprocessing_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="run the preprocessing"):
        threshold_participant("003", tmp_path, {})
