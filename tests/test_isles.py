"""A real acute-stroke case (ISLES 2022, strokecase0009: DWI, ADC in 10^-3 mm^2/s with no
Units field, expert lesion on the DWI grid, a baseline FLAIR only, no perfusion) through the
same per-participant workflow to MNI."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tissuefate.errors import InputError
from tissuefate.io import derivatives
from tissuefate.io.bids import read_sidecar
from tissuefate.io.units import detect_adc_factor, resolve_adc_factor
from tissuefate.preprocessing.qc import dice
from tissuefate.preprocessing.template import template_files
from tissuefate.preprocessing.workflow import (
    LIMITATION_BASELINE_FLAIR,
    LIMITATIONS_WITHOUT_PERFUSION,
    ParticipantInputs,
    PreprocessingSettings,
    check_inputs,
    preprocess_inputs,
)

CASE = Path(__file__).resolve().parents[2] / "shared" / "data" / "isles22-strokecase0009"
PREFIX = "sub-strokecase0009_ses-0001_"
LABEL = "strokecase0009"

pytestmark = pytest.mark.skipif(not CASE.is_dir(), reason="../shared/data/isles22-strokecase0009 is not there")


def isles_inputs() -> ParticipantInputs:
    return ParticipantInputs(
        label=LABEL,
        b1000=CASE / f"{PREFIX}dwi.nii.gz",
        adc=CASE / f"{PREFIX}adc.nii.gz",
        flair=CASE / f"{PREFIX}flair.nii.gz",
        lesion=CASE / f"{PREFIX}msk.nii.gz",
        lesion_description="acute lesion (ISLES 2022 expert mask, drawn on the DWI)",
        flair_session="baseline",  # acquired with the DWI: no follow-up imaging in ISLES 2022
    )


AUTO = PreprocessingSettings(adc_unit="auto")


@pytest.fixture(scope="module")
def isles_run(tmp_path_factory):
    results = tmp_path_factory.mktemp("isles_results")
    template_dir = tmp_path_factory.mktemp("template_2mm")
    summary = preprocess_inputs(isles_inputs(), results, AUTO, template_dir=template_dir)
    return results, template_dir, summary


def test_adc_unit_is_detected_as_1e3():
    adc = nib.load(str(CASE / f"{PREFIX}adc.nii.gz")).get_fdata()
    dwi = nib.load(str(CASE / f"{PREFIX}dwi.nii.gz")).get_fdata()
    assert "Units" not in read_sidecar(CASE / f"{PREFIX}adc.nii.gz")
    assert detect_adc_factor(adc, dwi > dwi.mean()) == 1000.0
    factor, source = resolve_adc_factor(adc, {}, "auto", participant=LABEL, path="adc")
    assert (factor, source) == (1000.0, "detected")


def test_checks_recognise_the_unit_and_the_lesion_grid():
    checks = check_inputs(isles_inputs(), AUTO)
    assert checks["adc_factor"] == 1000.0 and checks["adc_unit_source"] == "detected"
    assert checks["lesion_on"] == "dwi" and checks["registration_image"] == "b1000"  # no b0 here
    assert checks["perfusion_overlap"] == {}


def test_undeclared_unit_is_refused_under_the_sidecar_policy():
    with pytest.raises(InputError, match="not declared"):
        check_inputs(isles_inputs(), PreprocessingSettings(adc_unit="sidecar"))


@pytest.mark.slow
def test_warped_lesion_lands_inside_the_mni_brain(isles_run):
    results, template_dir, summary = isles_run
    lesion = nib.load(str(derivatives.final_infarct_mask(results, LABEL)))
    brain = nib.load(str(template_files(2, template_dir).brain_mask))
    assert lesion.shape == brain.shape and np.allclose(lesion.affine, brain.affine)
    les = np.asarray(lesion.dataobj) > 0
    inside = (les & (np.asarray(brain.dataobj) > 0)).sum() / les.sum()
    assert inside >= 0.98, inside
    native_ml = (nib.load(str(CASE / f"{PREFIX}msk.nii.gz")).get_fdata() > 0).sum() * 8 / 1000  # 2 mm voxels
    # MNI volume = native volume / (patient / template brain volume): her brain is small.
    assert summary["final_infarct_ml"] == pytest.approx(native_ml / summary["registration_qc"]["brain_volume_ratio"], rel=0.2)
    assert summary["registration_qc"]["passed"], summary["registration_qc"]
    assert summary["adc_unit"] == {"factor_to_um2_per_s": 1000.0, "source": "detected"}


@pytest.mark.slow
def test_says_what_it_cannot_do_without_perfusion(isles_run):
    results, _, summary = isles_run
    assert summary["has_perfusion"] is False and LIMITATIONS_WITHOUT_PERFUSION in summary["limitations"]
    for name in ("DWI", "ADC"):
        assert derivatives.preproc_map(results, LABEL, name).exists()
    for name in ("Tmax", "MTT", "CBF", "CBV"):
        assert not derivatives.preproc_map(results, LABEL, name).exists()
    assert not derivatives.preproc_mask(results, LABEL, "tmax6s").exists()
    cov = nib.load(str(derivatives.preproc_mask(results, LABEL, "coverage"))).get_fdata()
    brain = nib.load(str(derivatives.preproc_mask(results, LABEL, "brain"))).get_fdata()
    assert (cov == brain).all()  # diffusion-only coverage
    adc = nib.load(str(derivatives.preproc_map(results, LABEL, "ADC", "preproc"))).get_fdata()
    assert 600 < np.median(adc[brain > 0]) < 1200  # now in 10^-6 mm^2/s


@pytest.mark.slow
def test_core_thresholding_works_and_tissue_at_risk_says_why_not(isles_run):
    from tissuefate.thresholding import threshold_participant

    results, _, _ = isles_run
    with pytest.raises(InputError, match="no perfusion"):
        threshold_participant(LABEL, results, {})
    out = threshold_participant(LABEL, results, {}, targets=("ischemic_core",))
    core = nib.load(str(out["ischemic_core"])).get_fdata() > 0.5
    lesion = nib.load(str(derivatives.final_infarct_mask(results, LABEL))).get_fdata() > 0
    assert (core & lesion).sum() > 0.2 * lesion.sum()  # ADC < 620 finds part of the acute lesion


@pytest.mark.slow
def test_lesion_maps_back_to_native(isles_run, tmp_path):
    from tissuefate.preprocessing.workflow import to_native

    results, _, _ = isles_run
    dwi = CASE / f"{PREFIX}dwi.nii.gz"
    out = tmp_path / "native.nii.gz"
    back = to_native(derivatives.final_infarct_mask(results, LABEL), LABEL, results, None, out, interpolation="genericLabel", reference=dwi)
    assert out.exists() and back.shape == nib.load(str(dwi)).shape
    original = nib.load(str(CASE / f"{PREFIX}msk.nii.gz")).get_fdata() > 0
    assert dice(back.get_fdata() > 0.5, original) >= 0.6


@pytest.mark.slow
def test_baseline_flair_is_written_in_mni_but_not_used_for_fig3(isles_run):
    """The 0.45 x 0.45 x 5 mm FLAIR (same session) lands on the DWI's anatomy in MNI: it
    covers the brain, its acute lesion is brighter than the rest of the brain, and it
    correlates with the warped DWI. Fig 3 falls back to the DWI, and the summary says why."""
    from tissuefate.jobs.evaluation import overlay_background

    results, _, summary = isles_run
    assert summary["flair_session"] == "baseline" and LIMITATION_BASELINE_FLAIR in summary["limitations"]
    assert not derivatives.flair_map(results, LABEL, "final").exists()
    flair = nib.load(str(derivatives.flair_map(results, LABEL, "baseline"))).get_fdata()
    dwi = nib.load(str(derivatives.preproc_map(results, LABEL, "DWI", "preproc"))).get_fdata()
    brain = nib.load(str(derivatives.preproc_mask(results, LABEL, "brain"))).get_fdata() > 0
    lesion = nib.load(str(derivatives.final_infarct_mask(results, LABEL))).get_fdata() > 0
    assert (flair[~brain] == 0).all() and (flair[brain] > 0).mean() >= 0.95
    assert np.median(flair[lesion]) / np.median(flair[brain & ~lesion]) >= 1.2  # 1.42 measured
    assert np.corrcoef(flair[brain], dwi[brain])[0, 1] >= 0.4  # 0.58 measured
    background, what = overlay_background(results, LABEL)
    assert what == "baseline DWI (no follow-up FLAIR)"
    np.testing.assert_array_equal(background, nib.load(str(derivatives.preproc_map(results, LABEL, "DWI"))).get_fdata())
