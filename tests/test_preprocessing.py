"""Preprocessing: MNI-space numerics, each nipype interface on small images, bad input, the
whole per-participant job on a known-truth phantom, and the registration accuracy on the
simulated CI cohort."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from tissuefate.errors import InputError
from tissuefate.io import derivatives
from tissuefate.io.bids import ParticipantFiles, sidecar_path, write_json
from tissuefate.preprocessing import normalization as norm
from tissuefate.preprocessing.phantom import PhantomSpec, write_phantom_participant
from tissuefate.preprocessing.qc import (
    RegistrationQCError,
    _resample_mni,
    dice,
    qc_figure_path,
    qc_verdict,
    registration_accuracy,
    truth_paths,
)
from tissuefate.jobs.preprocessing import registration_table
from tissuefate.preprocessing.template import template_files
from tissuefate.preprocessing.workflow import (
    LIMITATION_NO_FLAIR,
    ParticipantInputs,
    PreprocessingSettings,
    check_inputs,
    followup_tmax_path,
    preprocess_participant,
    to_native,
)

LABEL = "ph01"
# Unit tests run at a 4 mm template (a second per normalization); the CI cohort test below
# runs the default 2 mm.
FAST = {"preprocessing": {"template_resolution_mm": 4}}


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session")
def template_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("template")
    template_files(4, d)
    return d


@pytest.fixture(scope="session")
def phantom_bids(tmp_path_factory):
    root = tmp_path_factory.mktemp("phantom") / "bids"
    write_phantom_participant(root, PhantomSpec(label=LABEL, native_mm=4.0, mni_mm=4.0, seed=3))
    return root


@pytest.fixture
def phantom_copy(tmp_path, phantom_bids):
    dst = tmp_path / "bids"
    shutil.copytree(phantom_bids, dst)
    return dst


@pytest.fixture(scope="session")
def phantom_results(tmp_path_factory, phantom_bids, template_dir):
    results = tmp_path_factory.mktemp("results")
    summary = preprocess_participant(LABEL, phantom_bids, results, FAST, template_dir=template_dir)
    return results, summary


def _mirror_x(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """The mask reflected across the MNI midline (x -> -x): the contralateral region."""
    ijk = np.argwhere(mask)
    world = ijk @ affine[:3, :3].T + affine[:3, 3]
    world[:, 0] *= -1
    back = np.rint((world - affine[:3, 3]) @ np.linalg.inv(affine[:3, :3]).T).astype(int)
    back = back[np.all((back >= 0) & (back < np.array(mask.shape)), axis=1)]
    out = np.zeros(mask.shape, bool)
    out[tuple(back.T)] = True
    return out


def flair_measures(results, label: str, bids_root) -> dict:
    """The follow-up FLAIR in MNI against the truth: where it lies relative to the MNI brain
    mask, its median in the TRUE final infarct over the mirrored contralateral brain, and its
    Pearson r with the noise-free truth FLAIR inside the brain."""
    img = nib.load(str(derivatives.flair_map(results, label)))
    flair = img.get_fdata()
    brain = nib.load(str(derivatives.preproc_mask(results, label, "brain"))).get_fdata() > 0
    truth = truth_paths(bids_root, label)
    infarct = _resample_mni(nib.load(str(truth["infarct"])), img, 0) > 0.5
    true_brain = _resample_mni(nib.load(str(truth["brain"])), img, 0) > 0.5
    contralateral = _mirror_x(infarct, img.affine) & true_brain & ~infarct
    inside = brain & (flair > 0)
    return {
        "max_outside_brain": float(np.abs(flair[~brain]).max()),
        "brain_covered": float(inside.sum() / brain.sum()),
        "lesion_contrast": float(np.median(flair[infarct]) / np.median(flair[contralateral])),
        "r_truth": float(np.corrcoef(flair[inside], _resample_mni(nib.load(str(truth["flair"])), img, 1)[inside])[0, 1]),
    }


def _affine(mm=2.0):
    a = np.diag([mm, mm, mm, 1.0])
    a[:3, 3] = -10 * mm
    return a


# ------------------------------------------------------------------ numerics in MNI space


def test_coverage_needs_brain_diffusion_and_perfusion():
    brain = np.zeros((4, 4, 4), bool)
    brain[1:3, 1:3, :] = True
    dwi = np.ones_like(brain)
    perf = np.zeros_like(brain)
    perf[:, :, 2:] = True
    cov = norm.coverage_mask(brain, dwi, perf)
    assert cov.sum() == 8 and not cov[:, :, :2].any()
    assert norm.coverage_mask(brain, dwi, None).sum() == brain.sum()  # no perfusion: diffusion only


def test_threshold_masks_are_strict_and_inside_coverage():
    tmax = np.array([5.9, 6.0, 6.1, 9.0])
    adc = np.array([619.0, 620.0, 50.0, 900.0])  # 50: background, not restricted diffusion
    cov = np.array([1, 1, 1, 0])
    t6, a620 = norm.threshold_masks(tmax, adc, cov)
    assert t6.tolist() == [False, False, True, False]
    assert a620.tolist() == [True, False, False, False]


def test_parenchyma_excludes_csf_lesion_and_low_tissue_probability():
    cov = np.ones(5, bool)
    tissue = np.array([0.9, 0.9, 0.2, 0.9, 0.9])
    adc = np.array([800.0, 3000.0, 800.0, 500.0, 750.0])
    lesion = np.array([0, 0, 0, 1, 1], bool)
    p = norm.parenchyma_mask(cov, tissue, adc, lesion)
    assert p.tolist() == [True, False, False, False, False]


def test_normalize_map_divides_by_parenchymal_mean_and_zeroes_outside_coverage():
    data = np.array([2.0, 4.0, 100.0, 7.0])
    par = np.array([1, 1, 0, 0], bool)
    cov = np.array([1, 1, 1, 0], bool)
    out, mean = norm.normalize_map(data, par, cov)
    assert mean == 3.0
    np.testing.assert_allclose(out, [2 / 3, 4 / 3, 100 / 3, 0.0], rtol=1e-6)
    with pytest.raises(ValueError):
        norm.normalize_map(np.zeros(4), par, cov)


def test_stroke_side_left_right_bilateral_and_none():
    a = _affine(2.0)  # x = 2 i - 20: i < 10 is left (x < 0), i = 10 the midline
    lesion = np.zeros((21, 3, 3), bool)
    lesion[2:5] = True
    assert norm.stroke_side(lesion, a)[0] == "left"
    lesion[15:16] = True  # a third of the lesion on the right
    side, left, right = norm.stroke_side(lesion, a)
    assert side == "bilateral" and left == pytest.approx(3 * right)
    assert norm.stroke_side(lesion, a, bilateral_min_fraction=0.4)[0] == "left"
    assert norm.stroke_side(np.zeros_like(lesion), a)[0] is None
    only_midline = np.zeros_like(lesion)
    only_midline[10] = True
    assert norm.stroke_side(only_midline, a)[0] is None


def test_remove_small_clusters():
    m = np.zeros((10, 10, 10), bool)
    m[0, 0, 0] = True
    m[5:8, 5:8, 5:8] = True  # 27 voxels of 8 uL
    out = norm.remove_small_clusters(m, _affine(2.0), min_ml=0.1)
    assert out.sum() == 27 and not out[0, 0, 0]


def test_binarize_preserving_volume_keeps_a_resampled_sphere_s_volume():
    from scipy import ndimage

    g = np.mgrid[:40, :40, :40].astype(float)
    sphere = ((g - 19.5) ** 2).sum(0) <= 6.0**2
    for shift in ((0.4, 0.3, 0.45), (0.5, 0.5, 0.5)):  # sub-voxel resamplings
        shifted = ndimage.shift(sphere.astype(float), shift, order=1)
        assert (shifted > 0.5).sum() < 0.98 * sphere.sum()  # the 0.5 threshold erodes it
        kept = norm.binarize_preserving_volume(shifted)
        assert abs(int(kept.sum()) - int(sphere.sum())) <= 0.03 * sphere.sum(), (shift, kept.sum())
    assert not norm.binarize_preserving_volume(np.zeros((3, 3, 3))).any()


def test_registration_resolution_follows_the_data(tmp_path):
    from tissuefate.preprocessing.workflow import registration_resolution

    for zooms, expected in (((3.0, 3.0, 3.75), 3), ((4.4, 4.4, 4.0), 4), ((0.9, 0.9, 5.0), 2), ((1.0, 1.0, 1.0), 2), ((6.0, 6.0, 6.0), 4)):
        path = tmp_path / f"{expected}_{zooms[2]}.nii.gz"
        nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.diag([*zooms, 1.0])), str(path))
        assert registration_resolution(path) == expected, zooms
        assert registration_resolution(path, 2) == 2


def test_settings_from_config():
    s = PreprocessingSettings.from_config({"cohort": {"tmax_threshold_s": 5.0}, "preprocessing": {"adc_unit": "auto", "syn_iterations": [10, 0]}})
    assert s.tmax_threshold_s == 5.0 and s.adc_unit == "auto" and s.syn_iterations == (10, 0)
    with pytest.raises(ValueError, match="unknown"):
        PreprocessingSettings.from_config({"preprocessing": {"typo_key": 1}})
    with pytest.raises(ValueError):
        PreprocessingSettings.from_config({"preprocessing": {"on_registration_failure": "ignore"}})


def test_qc_verdict_names_each_failed_measure():
    good = {"mutual_information": 0.5, "brain_dice_template": 0.95, "brain_volume_ratio": 1.1, "nonlinear_p95_mm": 3.0}
    kw = dict(min_mutual_information=0.1, min_brain_dice=0.8, brain_volume_ratio_range=(0.5, 2.0), max_nonlinear_p95_mm=8.0)
    assert qc_verdict(good, **kw) == (True, [])
    bad = {"mutual_information": 0.01, "brain_dice_template": 0.3, "brain_volume_ratio": 40.0, "nonlinear_p95_mm": 20.0}
    passed, reasons = qc_verdict(bad, **kw)
    assert not passed and len(reasons) == 4
    assert not qc_verdict({**good, "mutual_information": float("nan")}, **kw)[0]


def test_template_files_are_written_once(template_dir):
    paths = template_files(4, template_dir)
    mask = nib.load(str(paths.brain_mask))
    assert mask.shape == nib.load(str(paths.t1w)).shape
    assert set(np.unique(np.asarray(mask.dataobj))) == {0, 1}
    tissue = nib.load(str(paths.tissue_probseg)).get_fdata()
    assert 0 <= tissue.min() and tissue.max() <= 1
    assert paths.registration_target("b0") == paths.b0_like and paths.registration_target("b1000", "t1") == paths.t1w
    b0_like = nib.load(str(paths.b0_like)).get_fdata()
    assert b0_like.max() > 2 and (b0_like[np.asarray(mask.dataobj) == 0] == 0).all()  # CSF bright, zero outside
    with pytest.raises(ValueError):
        template_files(2.5, template_dir)


# ------------------------------------------------------------------ interfaces on small images


def _files(root):
    return ParticipantFiles(root, LABEL)


def _truth(root):
    return json.loads((_files(root).truth_dir() / f"sub-{LABEL}_desc-truth.json").read_text())


def test_rigid_coregistration_recovers_the_perfusion_motion(phantom_bids, tmp_path, monkeypatch):
    """The phantom's perfusion session moved by a known rigid motion: the interface's
    transform must map baseline points onto the perfusion points they came from."""
    import ants
    import pandas as pd

    from tissuefate.preprocessing.interfaces import RigidCoregistration

    monkeypatch.chdir(tmp_path)
    f = _files(phantom_bids)
    res = RigidCoregistration(fixed_image=str(f.baseline("b0")), moving_image=str(f.baseline("CBV"))).run()
    (tx,) = res.outputs.transforms
    motion = np.array(_truth(phantom_bids)["perfusion_motion"])  # perfusion scanner -> baseline scanner (RAS)
    img = nib.load(str(f.baseline("CBV")))
    ijk = np.argwhere(np.ones(img.shape, bool))[::7]
    p = ijk @ img.affine[:3, :3].T + img.affine[:3, 3]
    q = p @ motion[:3, :3].T + motion[:3, 3]
    lps = np.array([-1.0, -1.0, 1.0])
    mapped = ants.apply_transforms_to_points(3, pd.DataFrame(q * lps, columns=list("xyz")), [tx])[list("xyz")].to_numpy() * lps
    error = np.linalg.norm(mapped - p, axis=1)
    assert np.median(error) < 1.5, np.median(error)


def test_rigid_coregistration_is_identity_on_a_shared_grid(phantom_bids, tmp_path, monkeypatch):
    from tissuefate.preprocessing.interfaces import RigidCoregistration

    monkeypatch.chdir(tmp_path)
    f = _files(phantom_bids)
    res = RigidCoregistration(fixed_image=str(f.baseline("b1000")), moving_image=str(f.baseline("adc")), identity_if_same_grid=True).run()
    assert res.outputs.transforms == []


def test_lesion_metric_mask_excludes_the_core_only(phantom_bids, tmp_path, monkeypatch):
    from tissuefate.preprocessing.interfaces import LesionMetricMask

    monkeypatch.chdir(tmp_path)
    f = _files(phantom_bids)
    res = LesionMetricMask(adc=str(f.baseline("adc")), dwi=str(f.baseline("b1000")), reference=str(f.baseline("b0")), adc_factor=1.0).run()
    mask = nib.load(res.outputs.metric_mask).get_fdata()
    adc = nib.load(str(f.baseline("adc"))).get_fdata()
    b1000 = nib.load(str(f.baseline("b1000"))).get_fdata()
    core = (adc > 100) & (adc < 500) & (b1000 > np.percentile(b1000, 99))
    assert core.any() and (mask[core] == 0).all()
    assert 1.0 < res.outputs.excluded_ml < 100.0  # the lesion and a margin, not the brain's rim


def test_apply_transforms_field_of_view(phantom_bids, template_dir, tmp_path, monkeypatch):
    """With only the header (identity chain), ones on the DWI grid land where the DWI is."""
    import ants

    from tissuefate.preprocessing.interfaces import ApplyTransforms

    monkeypatch.chdir(tmp_path)
    f = _files(phantom_bids)
    ident = tmp_path / "identity.mat"
    ants.write_transform(ants.create_ants_transform(transform_type="AffineTransform", dimension=3), str(ident))
    tpl = template_files(4, template_dir)
    res = ApplyTransforms(moving_image=str(f.baseline("b1000")), reference_image=str(tpl.brain_mask), template_transform=str(ident), field_of_view=True).run()
    fov = nib.load(res.outputs.output_image).get_fdata()
    assert set(np.unique(np.round(fov, 3))) <= {0.0, 1.0}
    assert 0.1 < fov.mean() < 1.0


def test_native_foreground_covers_the_head(phantom_bids, tmp_path, monkeypatch):
    from tissuefate.preprocessing.interfaces import NativeForeground

    monkeypatch.chdir(tmp_path)
    f = _files(phantom_bids)
    mask = nib.load(NativeForeground(image=str(f.baseline("b1000"))).run().outputs.mask).get_fdata() > 0
    voxel_ml = abs(np.linalg.det(nib.load(str(f.baseline("b1000"))).affine[:3, :3])) / 1000
    assert 1000 < mask.sum() * voxel_ml < 2500  # a brain, not the field of view


# ------------------------------------------------------------------ bad input


def _check(root, **pre):
    return check_inputs(ParticipantInputs.from_bids(root, LABEL), PreprocessingSettings(**pre))


def test_good_phantom_passes_the_checks(phantom_bids):
    checks = _check(phantom_bids)
    assert checks["adc_factor"] == 1.0 and checks["adc_unit_source"] == "sidecar"
    assert checks["lesion_on"] == "flair" and checks["registration_image"] == "b0"
    assert min(checks["perfusion_overlap"].values()) > 0.5


def test_all_zero_image_is_refused(phantom_copy):
    path = _files(phantom_copy).baseline("b1000")
    img = nib.load(str(path))
    nib.save(nib.Nifti1Image(np.zeros(img.shape, np.float32), img.affine), str(path))
    with pytest.raises(InputError, match=r"sub-ph01: .*b1000.*empty.*Fix:"):
        _check(phantom_copy)


def test_4d_image_is_refused(phantom_copy):
    path = _files(phantom_copy).baseline("adc")
    img = nib.load(str(path))
    data = np.stack([img.get_fdata()] * 3, axis=-1).astype(np.float32)
    nib.save(nib.Nifti1Image(data, img.affine), str(path))
    with pytest.raises(InputError, match=r"shape .*3D image is expected"):
        _check(phantom_copy)


def test_perfusion_without_overlap_is_refused(phantom_copy):
    for name in ("Tmax", "MTT", "CBF", "CBV"):
        path = _files(phantom_copy).baseline(name)
        img = nib.load(str(path))
        moved = img.affine.copy()
        moved[2, 3] += 500.0  # half a metre above the head
        nib.save(nib.Nifti1Image(img.get_fdata().astype(np.float32), moved), str(path))
    with pytest.raises(InputError, match=r"does not overlap the baseline DWI"):
        _check(phantom_copy)


def test_partial_perfusion_is_refused(phantom_copy):
    _files(phantom_copy).baseline("CBF").unlink()
    with pytest.raises(InputError, match="missing CBF"):
        ParticipantInputs.from_bids(phantom_copy, LABEL)


def test_undeclared_adc_unit_needs_auto(phantom_copy):
    side = sidecar_path(_files(phantom_copy).baseline("adc"))
    write_json(side, {})
    with pytest.raises(InputError, match="not declared"):
        _check(phantom_copy)
    checks = _check(phantom_copy, adc_unit="auto")
    assert checks["adc_factor"] == 1.0 and checks["adc_unit_source"] == "detected"


def test_non_binary_lesion_is_refused(phantom_copy):
    path = _files(phantom_copy).infarct_mask
    img = nib.load(str(path))
    nib.save(nib.Nifti1Image(img.get_fdata().astype(np.float32) * 0.5, img.affine), str(path))
    with pytest.raises(InputError, match="not binary"):
        _check(phantom_copy)


# ------------------------------------------------------------------ the whole job on the phantom


@pytest.mark.slow
def test_phantom_outputs_exist(phantom_results):
    results, summary = phantom_results
    for name in derivatives.MAP_NAMES:
        for desc in ("normalized", "preproc"):
            assert derivatives.preproc_map(results, LABEL, name, desc).exists()
    for desc in ("brain", "coverage", "tmax6s", "adc620"):
        assert derivatives.preproc_mask(results, LABEL, desc).exists()
    for path in (
        derivatives.final_infarct_mask(results, LABEL),
        derivatives.transform(results, LABEL),
        derivatives.transform(results, LABEL, inverse=True),
        derivatives.preproc_summary(results, LABEL),
        followup_tmax_path(results, LABEL),
        qc_figure_path(results, LABEL),
    ):
        assert path.exists(), path
    assert not (results / "preprocessing" / ".work").exists() or not any((results / "preprocessing" / ".work").iterdir())
    assert summary["registration_qc"]["passed"], summary["registration_qc"]
    assert summary["stroke_side"] == "left" and summary["has_perfusion"] and summary["limitations"] == []


@pytest.mark.slow
def test_phantom_followup_flair_in_mni(phantom_results, phantom_bids, template_dir):
    """The phantom's FLAIR (lesion 1.9x brighter at its centre) on the MNI grid, through
    FLAIR -> DWI -> MNI: a 4 mm shift of the output drops r with the truth from 0.80 to 0.5."""
    results, summary = phantom_results
    path = derivatives.flair_map(results, LABEL)
    assert summary["flair_session"] == "final" and summary["outputs"]["FLAIR_preproc"] == str(path.relative_to(results))
    img, grid = nib.load(str(path)), nib.load(str(template_files(4, template_dir).brain_mask))
    assert img.shape == grid.shape and np.allclose(img.affine, grid.affine)
    m = flair_measures(results, LABEL, phantom_bids)
    assert m["max_outside_brain"] == 0.0 and m["brain_covered"] >= 0.95, m
    assert m["lesion_contrast"] >= 1.4, m  # 1.74 measured
    assert m["r_truth"] >= 0.7, m  # 0.80 measured


@pytest.mark.slow
def test_phantom_maps_are_normalized_and_masks_consistent(phantom_results):
    results, summary = phantom_results
    load = lambda p: nib.load(str(p)).get_fdata()  # noqa: E731
    cov = load(derivatives.preproc_mask(results, LABEL, "coverage")) > 0
    brain = load(derivatives.preproc_mask(results, LABEL, "brain")) > 0
    assert cov.any() and (cov <= brain).all()
    assert 0.6 < summary["coverage_fraction_of_brain"] < 1.0  # the perfusion slab is shorter
    for name in derivatives.MAP_NAMES:
        normalized = load(derivatives.preproc_map(results, LABEL, name))
        assert (normalized[~cov] == 0).all()
        assert 0.8 < np.median(normalized[cov]) < 1.3, name  # parenchymal mean is 1
    tmax = load(derivatives.preproc_map(results, LABEL, "Tmax", "preproc"))
    t6 = load(derivatives.preproc_mask(results, LABEL, "tmax6s")) > 0
    assert (t6 == (cov & (tmax > 6.0))).all()
    adc620 = load(derivatives.preproc_mask(results, LABEL, "adc620")) > 0
    adc = load(derivatives.preproc_map(results, LABEL, "ADC", "preproc"))
    assert adc620.any() and (adc[adc620] < 620).all()
    # The phantom's core sits inside its hypoperfusion, and the final infarct between them.
    assert summary["adc620_ml"] < summary["final_infarct_ml"] < summary["tmax6s_ml"]
    assert 0 < summary["followup_tmax6s_ml"] < summary["baseline_tmax6s_in_common_coverage_ml"]


@pytest.mark.slow
def test_phantom_registration_accuracy(phantom_results, phantom_bids):
    """4 mm phantom (with a scalp) on a 4 mm template: the demo's targets hold."""
    results, _ = phantom_results
    acc = registration_accuracy(LABEL, results, phantom_bids)
    assert acc["brain_dice"] >= 0.95, acc
    assert acc["lesion_dice"] >= 0.80, acc
    assert acc["median_displacement_mm"] <= 2.0, acc


@pytest.mark.slow
def test_to_native_maps_the_lesion_back(phantom_results, phantom_bids, tmp_path):
    results, _ = phantom_results
    out = tmp_path / "native.nii.gz"
    native = to_native(derivatives.final_infarct_mask(results, LABEL), LABEL, results, phantom_bids, out)
    b1000 = nib.load(str(_files(phantom_bids).baseline("b1000")))
    assert native.shape == b1000.shape and np.allclose(native.affine, b1000.affine)
    assert out.exists()
    # The true lesion on the native grid, looked up through the true coordinates.
    truth = _files(phantom_bids).truth_dir()
    coords = nib.load(str(truth / f"sub-{LABEL}_ses-baseline_acq-b1000_desc-mnicoords_xfm.nii.gz")).get_fdata()
    les = nib.load(str(truth / f"sub-{LABEL}_space-{derivatives.SPACE}_desc-infarct_mask.nii.gz"))
    ijk = np.rint((coords.reshape(-1, 3) - les.affine[:3, 3]) @ np.linalg.inv(les.affine[:3, :3]).T).astype(int)
    ijk = np.clip(ijk, 0, np.array(les.shape) - 1)
    true_native = np.asarray(les.dataobj)[tuple(ijk.T)].reshape(coords.shape[:3]) > 0
    assert dice(native.get_fdata() >= 0.5, true_native) >= 0.6


@pytest.mark.slow
def test_registration_table(phantom_results, phantom_bids, tmp_path):
    results, _ = phantom_results
    out = tmp_path / "qc" / "registration.tsv"
    table = registration_table([derivatives.participant_dir(results, LABEL)], phantom_bids, out)
    lines = out.read_text().splitlines()
    header = lines[0].split("\t")
    assert header[0] == "participant_id" and header[-2:] == ["qc_passed", "qc_reasons"] and len(lines) == 2
    row = table.iloc[0]
    assert bool(row["qc_passed"]) is True and row["brain_dice"] > 0.9 and row["qc_reasons"] == "n/a"


@pytest.mark.slow
def test_noise_image_is_flagged_never_passed_on(phantom_copy, template_dir, tmp_path):
    rng = np.random.default_rng(0)
    for acq in ("b0", "b1000"):
        path = _files(phantom_copy).baseline(acq)
        img = nib.load(str(path))
        nib.save(nib.Nifti1Image(np.abs(rng.normal(size=img.shape)).astype(np.float32), img.affine), str(path))
    config = {"preprocessing": {"template_resolution_mm": 4, "on_registration_failure": "error"}}
    with pytest.raises(RegistrationQCError, match="failed QC"):
        preprocess_participant(LABEL, phantom_copy, tmp_path / "res", config, template_dir=template_dir)
    summary = json.loads(derivatives.preproc_summary(tmp_path / "res", LABEL).read_text())
    assert summary["registration_qc"]["passed"] is False and summary["registration_qc"]["reasons"]
    assert qc_figure_path(tmp_path / "res", LABEL).exists()  # for the human who looks next


@pytest.mark.slow
def test_flipped_head_is_flagged(phantom_copy, template_dir, tmp_path):
    for acq in ("b0", "b1000"):
        path = _files(phantom_copy).baseline(acq)
        img = nib.load(str(path))
        nib.save(nib.Nifti1Image(img.get_fdata()[:, :, ::-1].astype(np.float32), img.affine), str(path))
    summary = preprocess_participant(LABEL, phantom_copy, tmp_path / "res", FAST, template_dir=template_dir)
    assert summary["registration_qc"]["passed"] is False, summary["registration_qc"]


# ------------------------------------------------------------------ the simulated CI cohort


def _ci_plan(simulated_bids):
    import pandas as pd

    return pd.read_csv(simulated_bids / "derivatives" / "simulation" / "plan.tsv", sep="\t", keep_default_na=False)


@pytest.fixture(scope="module")
def ci_preprocessed(simulated_bids, ci_config, tmp_path_factory):
    """The three included CI participants with the largest final infarcts, preprocessed at
    the CI config's template resolution: (results, {label: summary})."""
    plan = _ci_plan(simulated_bids)
    included = [p.removeprefix("sub-") for p in plan.loc[plan["simulated_exclusion"] == "n/a", "participant_id"]]
    volume = {
        lab: json.loads((ParticipantFiles(simulated_bids, lab).truth_dir() / f"sub-{lab}_desc-truth.json").read_text())["final_infarct_ml_mni"]
        for lab in included
    }
    results = tmp_path_factory.mktemp("ci_results")
    return results, {lab: preprocess_participant(lab, simulated_bids, results, ci_config) for lab in sorted(included, key=lambda lab: -volume[lab])[:3]}


@pytest.mark.slow
def test_registration_accuracy_on_the_ci_cohort(simulated_bids, ci_preprocessed):
    """The demo's targets hold on the CI cohort's 4-5 mm images too."""
    results, summaries = ci_preprocessed
    accs = []
    for lab, summary in summaries.items():
        assert summary["registration_qc"]["passed"], (lab, summary["registration_qc"])
        accs.append(registration_accuracy(lab, results, simulated_bids))
    med = {k: float(np.median([a[k] for a in accs])) for k in ("brain_dice", "lesion_dice", "median_displacement_mm")}
    assert med["brain_dice"] >= 0.95, accs
    assert med["lesion_dice"] >= 0.80, accs
    assert med["median_displacement_mm"] <= 2.0, accs


@pytest.mark.slow
def test_followup_flair_in_mni_on_the_ci_cohort(simulated_bids, ci_config, ci_preprocessed):
    """The simulator's final infarct is 1.55x brighter than tissue on FLAIR: in MNI it lies
    where the truth puts it. A participant without follow-up imaging gets no FLAIR, and says so."""
    results, summaries = ci_preprocessed
    for lab, summary in summaries.items():
        assert summary["flair_session"] == "final" and LIMITATION_NO_FLAIR not in summary["limitations"]
        m = flair_measures(results, lab, simulated_bids)
        assert m["max_outside_brain"] == 0.0 and m["brain_covered"] >= 0.95, (lab, m)
        assert m["lesion_contrast"] >= 1.4, (lab, m)  # 1.72-1.77 measured
        assert m["r_truth"] >= 0.65, (lab, m)  # 0.75-0.84 measured
    plan = _ci_plan(simulated_bids)
    lab = plan.loc[plan["simulated_exclusion"] == "no_usable_followup", "participant_id"].iloc[0].removeprefix("sub-")
    summary = preprocess_participant(lab, simulated_bids, results, ci_config)
    assert summary["flair_session"] is None and LIMITATION_NO_FLAIR in summary["limitations"]
    assert "FLAIR_preproc" not in summary["outputs"] and not derivatives.flair_map(results, lab).exists()


IMPORT_PROBE = """
import json, os, sys
os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = "1"  # as the preprocessing job runs it
if sys.argv[1] == "plain":
    import ants  # antspyx's own import, every subpackage
from tissuefate.preprocessing.registration import coregister_rigid, import_ants, set_random_seed

ants = import_ants()
set_random_seed(20210401)
loaded = {name: name in sys.modules for name in ("sklearn", "statsmodels.regression.linear_model")}
tx = coregister_rigid(sys.argv[2], sys.argv[3], sys.argv[4] + "/" + sys.argv[1] + "_")
params = ants.read_transform(str(tx)).parameters.tolist()
import statsmodels.api, statsmodels.formula.api
reachable = [
    ants.eig_seg.__module__,  # ants.learn, left out of the import, loads on first use
    ants.crop_image_center.__module__,  # ants.deeplearn likewise
    ants.learn.__name__,
    sys.modules["ants.math.quantile"].sm.OLS is statsmodels.api.OLS,  # the stand-ins resolve to
    sys.modules["ants.math.quantile"].smf.ols is statsmodels.formula.api.ols,  # the real modules
    callable(ants.image_read(sys.argv[2]).plot),  # ants.plotting's ANTsImage methods are there
]
print(json.dumps({"loaded": loaded, "params": params, "reachable": reachable}))
"""


def test_ants_is_imported_without_what_the_pipeline_never_calls_and_registers_the_same(phantom_bids, tmp_path):
    """import_ants() leaves out ants.learn and ants.deeplearn and defers statsmodels (0.5 CPU s
    of every preprocessing and prediction job): scikit-learn and statsmodels' models are not
    loaded, every antspyx name still resolves, and a rigid registration gives the same
    parameters, bit for bit, as after antspyx's own `import ants`."""
    import subprocess
    import sys

    f = _files(phantom_bids)
    results = {}
    for mode in ("lean", "plain"):
        out = subprocess.run([sys.executable, "-c", IMPORT_PROBE, mode, str(f.baseline("b0")), str(f.baseline("CBV")),
                              str(tmp_path)], capture_output=True, text=True, check=True).stdout
        results[mode] = json.loads(out.strip().splitlines()[-1])
    assert results["lean"]["loaded"] == {"sklearn": False, "statsmodels.regression.linear_model": False}
    assert results["plain"]["loaded"] == {"sklearn": True, "statsmodels.regression.linear_model": True}
    for mode in ("lean", "plain"):
        assert results[mode]["reachable"] == ["ants.learn.decomposition", "ants.deeplearn.cropping_and_padding_utilities",
                                              "ants.learn", True, True, True], mode
    assert results["lean"]["params"] == results["plain"]["params"]
    assert any(abs(p) > 1e-3 for p in results["lean"]["params"][:9])  # a real rotation matrix came back
