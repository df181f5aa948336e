"""`tissuefate predict`: trial criteria at their boundaries, the fold reproduction on the CI study,
DICOM round trip, the ISLES 2022 case without perfusion, and bad input (nothing written)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tissuefate import triage
from tissuefate.errors import InputError
from tissuefate.predict_patient import SUMMARY, PatientMaps, check_tmax_scale, predict_patient

REPO = Path(__file__).resolve().parents[1]
ISLES = REPO.parent / "shared" / "data" / "isles22-strokecase0009"
TARGETS = (("tissue_at_risk", "tissueatrisk"), ("ischemic_core", "ischemiccore"))


# ------------------------------------------------------------------ criteria (no data needed)


def test_defuse3_boundaries_are_exact():
    q = {"core_ml": 69.9, "mismatch_ratio": 1.8, "mismatch_ml": 15.0}
    assert triage.evaluate("DEFUSE 3", q)["meets"] is True
    assert triage.evaluate("DEFUSE 3", {**q, "core_ml": 70.0})["meets"] is False  # core < 70
    assert triage.evaluate("DEFUSE 3", {**q, "mismatch_ratio": 1.79})["meets"] is False  # ratio >= 1.8
    assert triage.evaluate("DEFUSE 3", {**q, "mismatch_ml": 14.9})["meets"] is False  # mismatch >= 15
    assert triage.evaluate("DEFUSE 3", q)["verdict"] == "meets"
    assert triage.evaluate("DEFUSE 3", {**q, "core_ml": 70.0})["verdict"] == "does not meet"


def test_extend_ia_and_swift_prime_differ_where_the_trials_differ():
    q = {"core_ml": 60.0, "mismatch_ratio": 1.5, "mismatch_ml": 12.0, "tmax10s_ml": 50.0}
    assert triage.evaluate("EXTEND-IA", q)["meets"] is True
    assert triage.evaluate("DEFUSE 3", q)["meets"] is False
    assert triage.evaluate("EXTEND-IA", {**q, "mismatch_ratio": 1.2})["meets"] is False  # strictly > 1.2
    assert triage.evaluate("EXTEND-IA", {**q, "mismatch_ml": 10.0})["meets"] is False  # strictly > 10
    sp = {"core_ml": 50.0, "mismatch_ratio": 1.81, "mismatch_ml": 15.0, "tmax10s_ml": 100.0}
    assert triage.evaluate("SWIFT PRIME", sp)["meets"] is True  # <= 50, <= 100, >= 15
    assert triage.evaluate("SWIFT PRIME", {**sp, "mismatch_ratio": 1.8})["meets"] is False  # strictly > 1.8
    assert triage.evaluate("SWIFT PRIME", {**sp, "core_ml": 50.1})["meets"] is False
    assert triage.evaluate("SWIFT PRIME", {**sp, "tmax10s_ml": None})["meets"] is None


def test_mismatch_from_volumes_rounds_as_reported():
    # 126 / 70 is 1.7999999999999998 in floating point: the verdict follows the reported 1.80.
    m = triage.mismatch(126.0, 70.0)
    assert m == {"tissue_at_risk_ml": 126.0, "core_ml": 70.0, "mismatch_ml": 56.0, "mismatch_ratio": 1.8}
    assert triage.evaluate("DEFUSE 3", {**triage.mismatch(27.0, 15.0 - 1e-9)})["checks"][1]["met"] is True
    assert triage.mismatch(10.0, 0.0)["mismatch_ratio"] == math.inf
    assert math.isnan(triage.mismatch(0.0, 0.0)["mismatch_ratio"])
    assert triage.evaluate("DEFUSE 3", triage.mismatch(10.0, 0.0))["meets"] is False  # mismatch 10 < 15
    assert triage.evaluate("DEFUSE 3", triage.mismatch(20.0, 0.0))["meets"] is True
    assert triage.json_number(math.inf) == "infinite"


def test_implausible_model_volumes_are_flagged_at_half_the_covered_brain():
    from tissuefate.predict_patient import implausible_volume_warnings

    assert implausible_volume_warnings({"tissue_at_risk_ml": 600.0, "core_ml": 80.0}, 1200.0) == []
    flagged = implausible_volume_warnings({"tissue_at_risk_ml": 600.1, "core_ml": 1150.0}, 1200.0)
    assert [w.split(":")[1].split(" mL")[0].strip() for w in flagged] == ["tissue at risk 600", "core 1150"]
    assert "96 % of the 1200 mL" in flagged[1] and "model_card.md" in flagged[1]
    # No model volume (no perfusion: no tissue at risk) or no coverage figure: nothing to judge.
    assert implausible_volume_warnings({"tissue_at_risk_ml": None, "core_ml": 10.0}, 1200.0) == []
    assert implausible_volume_warnings({"core_ml": 1e6}, None) == []


def test_tmax_scaled_by_ten_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    tmax = np.abs(rng.normal(0.5, 0.3, (20, 20, 10))).astype(np.float32)
    tmax[5:10, 5:10, 3:6] = 15.0
    seconds = tmp_path / "tmax_s.nii.gz"
    nib.save(nib.Nifti1Image(tmax, np.eye(4)), str(seconds))
    assert check_tmax_scale(seconds, "p") == pytest.approx(15.0)
    tenths = tmp_path / "tmax_x10.nii.gz"
    nib.save(nib.Nifti1Image(tmax * 10, np.eye(4)), str(tenths))
    with pytest.raises(InputError, match=r"x10.*Fix: divide the map by 10"):
        check_tmax_scale(tenths, "p")
    (tmp_path / "tmax_x10.json").write_text('{"Units": "ms"}')  # declared ms: 150 ms is plausible
    assert check_tmax_scale(tenths, "p") == pytest.approx(0.15)


# ------------------------------------------------------------------ on the CI study (slow)


def _test_patient(ci_run) -> tuple[str, int]:
    """A tissue-at-risk test patient of the CI study and its fold (also cross-applied to the core model)."""
    splits = json.loads((ci_run / "results" / "splits" / "splits.json").read_text())
    for k, fold in enumerate(splits["tissue_at_risk"]["folds"], 1):
        if fold["test"]:
            return fold["test"][0].removeprefix("sub-"), k
    raise AssertionError("no test patient in the CI study")


def _bids(ci_run) -> Path:
    import yaml

    return ci_run / yaml.safe_load((ci_run / "config" / "ci.yaml").read_text())["dataset"]["bids_dir"]


def _predict_command(*args: str, cwd: Path | None = None) -> dict:
    """`tissuefate predict ARGS` as a user runs it, in a process of its own: ITK fixes its
    thread count when it first starts, so an in-process call after other registrations in
    this test session would register with another thread count than the study's jobs did.
    Relative paths in ARGS are relative to ``cwd``."""
    proc = subprocess.run([sys.executable, "-m", "tissuefate", "predict", *args],
                          capture_output=True, text=True, cwd=cwd)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    out = Path(cwd or ".") / args[args.index("--out") + 1]
    return json.loads((out / SUMMARY).read_text())


def _fold_prediction(ci_run, tmp_path_factory, *extra: str):
    label, fold = _test_patient(ci_run)
    out = tmp_path_factory.mktemp("predict") / "fold"
    summary = _predict_command("--bundle", str(ci_run / "results" / "bundle"), "--bids", str(_bids(ci_run)),
                               "--participant", label, "--folds", str(fold), "--threads", "1",
                               "--out", str(out), *extra)
    return label, fold, out, summary


@pytest.fixture(scope="module")
def fold_prediction(ci_run, tmp_path_factory):
    """The command as users run it: models folded for inference, mapped back within the coverage's box."""
    return _fold_prediction(ci_run, tmp_path_factory)


def _study_map(ci_run, label, fold, target, desc) -> nib.Nifti1Image:
    return nib.load(str(ci_run / "results" / "predictions" / "pretraining" / target / f"fold-{fold}" /
                        f"sub-{label}_ses-baseline_space-orig_desc-{desc}_probseg.nii.gz"))


@pytest.mark.slow
def test_exact_fold_model_alone_reproduces_the_study_prediction_bit_for_bit(ci_run, tmp_path_factory):
    label, fold, out, summary = _fold_prediction(ci_run, tmp_path_factory, "--exact")
    assert summary["model"]["arithmetic"].startswith("exact")
    for target, desc in TARGETS:
        a = _study_map(ci_run, label, fold, target, desc)
        b = nib.load(str(out / f"sub-{label}_space-orig_desc-{desc}_probseg.nii.gz"))
        x, y = np.asarray(a.dataobj, np.float32), np.asarray(b.dataobj, np.float32)
        assert float(x.max()) > 0.01, "the study's map is empty: the comparison would prove nothing"
        # Same bytes: the CI study predicts with one thread (training.resources.threads: 1), registers
        # with one ITK thread, and so does this command with --threads 1 --exact.
        assert np.array_equal(y, x)


@pytest.mark.slow
def test_fold_model_alone_reproduces_the_study_prediction(ci_run, fold_prediction):
    label, fold, out, summary = fold_prediction
    assert summary["bundle"]["folds"] == [fold]
    assert summary["model"]["arithmetic"].startswith("folded")
    for target, desc in TARGETS:
        a = _study_map(ci_run, label, fold, target, desc)
        ours = out / f"sub-{label}_space-orig_desc-{desc}_probseg.nii.gz"
        b = nib.load(str(ours))
        assert a.shape == b.shape and np.allclose(a.affine, b.affine, atol=1e-4)
        x, y = np.asarray(a.dataobj, np.float32), np.asarray(b.dataobj, np.float32)
        assert float(x.max()) > 0.01, "the study's map is empty: the comparison would prove nothing"
        # The same numbers up to float tolerance (batch-norm folded, channels-last: another order
        # of the same sums), and nothing lost outside the box that was resampled.
        np.testing.assert_allclose(y, x, atol=1e-5, rtol=0)
        assert np.array_equal(y != 0, x != 0)
        # The masks agree wherever the map is not within float noise of the threshold.
        t = summary["probability_threshold"]
        clear = np.abs(x - t) > 1e-5
        assert np.array_equal((y >= t)[clear], (x >= t)[clear])
        # One model: SD 0, mask = map >= threshold, volume from the mask.
        sd = np.asarray(nib.load(str(out / f"sub-{label}_space-orig_desc-{desc}SD_probseg.nii.gz")).dataobj)
        assert float(np.abs(sd).max()) == 0.0
        mask = np.asarray(nib.load(str(out / f"sub-{label}_space-orig_desc-{desc}_mask.nii.gz")).dataobj) > 0
        assert np.array_equal(mask, y >= summary["probability_threshold"])
        voxel_ml = abs(np.linalg.det(b.affine[:3, :3])) / 1000
        key = "tissue_at_risk_ml" if target == "tissue_at_risk" else "core_ml"
        assert summary["model"][key] == round(mask.sum() * voxel_ml, 1)


@pytest.mark.slow
def test_outputs_criteria_and_report(fold_prediction):
    label, fold, out, summary = fold_prediction
    written = json.loads((out / "summary.json").read_text())
    assert written["criteria"] == summary["criteria"]
    for trial in ("DEFUSE 3", "EXTEND-IA", "SWIFT PRIME"):
        for source in ("model", "thresholding"):
            assert written["criteria"][trial][source]["verdict"] in ("meets", "does not meet", "cannot be assessed")
    m = written["model"]
    assert m["mismatch_ml"] == round(m["tissue_at_risk_ml"] - m["core_ml"], 1)
    assert m["tissue_at_risk_ml_interval"][0] <= m["tissue_at_risk_ml"] <= m["tissue_at_risk_ml_interval"][1]
    t = written["thresholding"]
    assert t["tissue_at_risk_ml"] >= t["core_ml"]  # Tmax > 6 s OR ADC < 620 contains ADC < 620
    assert (out / "report.png").stat().st_size > 10_000
    page = (out / "report.html").read_text()
    assert "DEFUSE 3" in page and "not for clinical use" in page.lower()
    assert not list(out.parent.glob(".fold.*")), "temporary folders left behind"


@pytest.mark.slow
def test_ensemble_interval_contains_each_member(ci_run, tmp_path):
    label, _ = _test_patient(ci_run)
    summary = predict_patient(ci_run / "results" / "bundle", PatientMaps.from_bids(_bids(ci_run), label),
                              tmp_path / "out", threads=1)
    members = summary["model"]["members"]["ischemic_core"]
    assert len(members) == len(summary["bundle"]["folds"]) > 1
    lo, hi = summary["model"]["core_ml_interval"]
    assert lo == min(m["volume_ml"] for m in members) and hi == max(m["volume_ml"] for m in members)
    sd = np.asarray(nib.load(str(tmp_path / "out" / f"sub-{label}_space-orig_desc-ischemiccoreSD_probseg.nii.gz")).dataobj)
    assert float(sd.max()) > 0  # different fold models disagree somewhere


@pytest.mark.slow
def test_ensemble_prediction_is_each_models_own_map_bit_for_bit(ci_run):
    """predict_ensemble (batches built once, models side by side with one thread each) gives
    exactly predict_volume's map per model with one thread, as the study's prediction jobs
    run it (training.resources.threads: 1 in config/ci.yaml)."""
    import torch

    from tissuefate.dataset import load_participant
    from tissuefate.model import load_model
    from tissuefate.prediction import predict_ensemble, predict_volume

    label, _ = _test_patient(ci_run)
    volumes = load_participant(ci_run / "results", label, with_target=False)
    paths = sorted((ci_run / "results" / "bundle" / "models").rglob("fold-*.pt"))
    assert len(paths) >= 4
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        alone = [predict_volume(load_model(p), volumes) for p in paths]
        torch.set_num_threads(2)
        together = predict_ensemble(paths, volumes, workers=2)
        assert torch.get_num_threads() == 2  # restored
        serial = predict_ensemble([load_model(p) for p in paths[:2]], volumes, workers=1)
    finally:
        torch.set_num_threads(threads)
    assert len(together) == len(paths)
    assert max(float(a.max()) for a in alone) > 0.01
    assert len({a.tobytes() for a in alone}) == len(alone)  # different models, different maps: order is checked
    for a, b in zip(alone, together):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    for a, b in zip(alone, serial):
        assert np.array_equal(a, b)
    # Folded for inference (tissuefate predict's default): another order of the same sums.
    folded_models = [load_model(p) for p in paths[:2]]
    folded = predict_ensemble(folded_models, volumes, workers=2, exact=False)
    for a, b in zip(alone, folded):
        assert a.dtype == b.dtype and not np.array_equal(a, b)  # really another arithmetic
        np.testing.assert_allclose(b, a, atol=1e-6, rtol=0)
    assert all(m.training is False and isinstance(m.encoder.blocks[0][1], torch.nn.BatchNorm2d)
               for m in folded_models)  # the models given are left as they were


@pytest.mark.slow
def test_to_native_many_is_to_native_of_each_bit_for_bit(ci_run, tmp_path):
    """One ANTs call for several MNI volumes (a time series) resamples each exactly as alone:
    probability maps (linear) and masks (genericLabel)."""
    from tissuefate.io import derivatives
    from tissuefate.io.nifti import save_image
    from tissuefate.preprocessing.workflow import to_native, to_native_many

    label, fold = _test_patient(ci_run)
    results = ci_run / "results"
    ref = PatientMaps.from_bids(_bids(ci_run), label).dwi
    study = ci_run / "results" / "predictions" / "pretraining" / "tissue_at_risk" / f"fold-{fold}" / \
        f"sub-{label}_ses-baseline_space-MNI152NLin2009aSym_desc-tissueatrisk_probseg.nii.gz"
    img = nib.load(str(study))
    rng = np.random.default_rng(0)
    maps = [np.asarray(img.dataobj, np.float32), rng.random(img.shape, dtype=np.float32)]
    masks = [np.asarray(nib.load(str(derivatives.preproc_mask(results, label, k))).dataobj, np.float32)
             for k in ("adc620", "tmax6s", "coverage")]
    for volumes, interp in ((maps, "linear"), (masks, "genericLabel")):
        many = to_native_many(np.stack(volumes), img.affine, label, results, ref, interpolation=interp)
        assert many.shape[0] == len(volumes) and many.dtype == np.float32
        for i, v in enumerate(volumes):
            path = tmp_path / f"{interp}-{i}.nii.gz"
            save_image(v, img.affine, path)
            alone = np.asarray(to_native(path, label, results, None, interpolation=interp, reference=ref).dataobj)
            assert alone.shape == many[i].shape and np.array_equal(alone, many[i]), (interp, i)
    assert float(many[2].sum()) > 0  # the coverage mask is not empty in the patient's space
    one = to_native_many(np.stack(maps[:1]), img.affine, label, results, ref)
    assert one.shape[0] == 1

    # Only the box around the coverage's native footprint (tissuefate predict's default): the
    # maps are 0 outside coverage, so the whole grid holds nothing outside the box, and inside it
    # the values are the whole grid's up to float rounding of the box's origin.
    from tissuefate.preprocessing.workflow import support_box

    cov_mni = masks[2]
    covered = [maps[0] * cov_mni, maps[1] * cov_mni]
    box = support_box(many[2] > 0.5, [3, 3, 3])
    assert box is not None and np.prod([s.stop - s.start for s in box]) < 0.9 * np.prod(many[2].shape)
    full = to_native_many(np.stack(covered), img.affine, label, results, ref)
    boxed = to_native_many(np.stack(covered), img.affine, label, results, ref, within=box)
    assert boxed.shape == full.shape
    outside = np.ones(full.shape[1:], bool)
    outside[box] = False
    assert float(np.abs(full[:, outside]).max()) == 0.0 and float(full.max()) > 0.5
    np.testing.assert_allclose(boxed, full, atol=1e-5, rtol=0)  # measured: 1.3e-6 at most
    assert support_box(np.zeros((4, 4, 4), bool), [1, 1, 1]) is None
    assert support_box(np.pad(np.ones((1, 1, 1), bool), 3), [1, 2, 9]) == (slice(2, 5), slice(1, 6), slice(0, 7))


# ------------------------------------------------------------------ bad input: clear error, nothing written


@pytest.fixture(scope="module")
def ci_maps(ci_run) -> PatientMaps:
    label, _ = _test_patient(ci_run)
    return PatientMaps.from_bids(_bids(ci_run), label)


def _copy_maps(maps: PatientMaps, dst: Path) -> PatientMaps:
    dst.mkdir(parents=True, exist_ok=True)

    def cp(p):
        out = dst / Path(p).name
        shutil.copy2(p, out)
        side = Path(str(p).replace(".nii.gz", ".json"))
        if side.exists():
            shutil.copy2(side, dst / side.name)
        return out

    return PatientMaps(dwi=cp(maps.dwi), adc=cp(maps.adc), b0=None if maps.b0 is None else cp(maps.b0),
                       perfusion={k: cp(v) for k, v in maps.perfusion.items()}, label=maps.label)


@pytest.mark.slow
@pytest.mark.parametrize("problem", ["missing_map", "tmax_x10", "adc_unit", "bundle_checksum", "bundle_version"])
def test_bad_input_clear_error_nothing_written(problem, ci_run, ci_maps, tmp_path):
    bundle = ci_run / "results" / "bundle"
    maps = _copy_maps(ci_maps, tmp_path / "in")
    if problem == "missing_map":
        maps.perfusion["CBF"].unlink()
        match = r"CBF.*the CBF map is missing"
    elif problem == "tmax_x10":
        img = nib.load(str(maps.perfusion["Tmax"]))
        nib.save(nib.Nifti1Image(img.get_fdata(dtype=np.float32) * 10, img.affine), str(maps.perfusion["Tmax"]))
        match = r"Tmax.*not physiological.*Fix: divide the map by 10"
    elif problem == "adc_unit":
        Path(str(maps.adc).replace(".nii.gz", ".json")).unlink()  # the CI bundle's policy: the sidecar's Units
        match = r"adc"
    else:
        bundle = tmp_path / "bundle"
        shutil.copytree(ci_run / "results" / "bundle", bundle)
        if problem == "bundle_checksum":
            (bundle / "config.yaml").write_text((bundle / "config.yaml").read_text() + "\n# edited\n")
            match = r"config.yaml: the file's SHA-256 does not match"
        else:
            manifest = json.loads((bundle / "manifest.json").read_text())
            manifest["format_version"] = 99
            (bundle / "manifest.json").write_text(json.dumps(manifest))
            match = r"version 99"
    out = tmp_path / "out"
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(InputError, match=match):
        predict_patient(bundle, maps, out, threads=1)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before


# ------------------------------------------------------------------ DICOM


@pytest.mark.slow
def test_multi_series_dicom_folder_is_refused(ci_maps, tmp_path):
    from dicom_writer import write_dicom_series

    from tissuefate.dicom import convert_series

    folder = tmp_path / "mixed"
    write_dicom_series(ci_maps.perfusion["Tmax"], folder / "a", series_number=1, description="Tmax")
    write_dicom_series(ci_maps.perfusion["CBF"], folder / "b", series_number=2, description="CBF")
    with pytest.raises(InputError, match=r"mixed: the Tmax folder holds 2 DICOM series.*Fix: give one folder per series"):
        convert_series(folder, tmp_path / "nii", label="p", what="Tmax")
    assert not (tmp_path / "nii").exists()


@pytest.mark.slow
def test_rgb_dicom_is_refused(ci_maps, tmp_path):
    from dicom_writer import write_dicom_series

    from tissuefate.dicom import convert_series

    write_dicom_series(ci_maps.perfusion["Tmax"], tmp_path / "rgb", rgb=True, description="Tmax colour")
    with pytest.raises(InputError, match="colour image.*secondary capture"):
        convert_series(tmp_path / "rgb", tmp_path / "nii", what="Tmax")


@pytest.mark.slow
def test_dicom_round_trip_gives_the_same_result(ci_run, ci_maps, fold_prediction, tmp_path):
    """The patient's maps written as DICOM series (int16 + rescale, as scanners store them),
    converted back with dcm2niix and predicted: the same maps and volumes as from NIfTI."""
    from dicom_writer import write_dicom_series

    from tissuefate.io.bids import read_sidecar

    label, fold, nifti_out, nifti_summary = fold_prediction
    dcm = tmp_path / "dicom"
    study = None
    args = {"dwi": ci_maps.dwi, "adc": ci_maps.adc, **{k.lower(): v for k, v in ci_maps.perfusion.items()}}
    if ci_maps.b0 is not None:
        args["b0"] = ci_maps.b0
    for i, (name, path) in enumerate(args.items(), 1):
        write_dicom_series(path, dcm / name, series_number=i, description=name, study_uid=study)
    adc_unit = read_sidecar(Path(ci_maps.adc))["Units"]
    # Every path relative to the working directory, as README's command is typed
    # (`--bundle results/bundle` once failed: nipype runs its nodes in folders of their own).
    bundle = os.path.relpath(ci_run / "results" / "bundle", tmp_path)
    summary = _predict_command("--bundle", bundle, "--out", "out",
                               "--participant", label, "--adc-unit", adc_unit, "--folds", str(fold),
                               "--threads", "1", *[a for k in args for a in (f"--{k}", f"dicom/{k}")],
                               cwd=tmp_path)
    for key in ("tissue_at_risk_ml", "core_ml"):
        assert summary["model"][key] == pytest.approx(nifti_summary["model"][key], abs=0.5, rel=0.02)
    for key in ("tissue_at_risk_ml", "core_ml"):
        assert summary["thresholding"][key] == pytest.approx(nifti_summary["thresholding"][key], abs=0.5, rel=0.02)
    # Same map in world space (dcm2niix may store the voxels in another order).
    a = nib.as_closest_canonical(nib.load(str(nifti_out / f"sub-{label}_space-orig_desc-tissueatrisk_probseg.nii.gz")))
    b = nib.as_closest_canonical(nib.load(str(tmp_path / "out" / f"sub-{label}_space-orig_desc-tissueatrisk_probseg.nii.gz")))
    assert np.allclose(a.affine, b.affine, atol=1e-3)
    # Not bit for bit: the DICOM values are int16 with a rescale slope and dcm2niix stores the
    # voxels in another order, so the registration differs in the last digits; a few edge voxels
    # move (measured on the CI study: Dice 0.993 and correlation 0.9992 on the first simulator;
    # Dice 0.977 and correlation 0.9930 on the one with real lesion shapes, whose 2-epoch CI
    # models predict large, ragged regions with long edges).
    x, y = a.get_fdata(), b.get_fdata()
    assert np.corrcoef(x.ravel(), y.ravel())[0, 1] > 0.99
    mx, my = x >= 0.5, y >= 0.5
    assert 2 * (mx & my).sum() / (mx.sum() + my.sum()) > 0.97


# ------------------------------------------------------------------ ISLES 2022: no perfusion


@pytest.mark.slow
@pytest.mark.skipif(not ISLES.is_dir(), reason="../shared/data/isles22-strokecase0009 is not there")
def test_isles_case_without_perfusion_gets_the_core_it_can(ci_run, tmp_path):
    prefix = "sub-strokecase0009_ses-0001_"
    maps = PatientMaps(dwi=ISLES / f"{prefix}dwi.nii.gz", adc=ISLES / f"{prefix}adc.nii.gz", label="strokecase0009")
    summary = predict_patient(ci_run / "results" / "bundle", maps, tmp_path / "out", adc_unit="auto", threads=1)
    assert "model" not in summary
    text = " ".join(summary["cannot_compute"])
    assert "tissue at risk" in text and "mismatch" in text and "DEFUSE 3" in text
    core = summary["core_estimate"]["core_ml"]
    mask = nib.load(str(tmp_path / "out" / "sub-strokecase0009_space-orig_desc-adc620_mask.nii.gz"))
    voxel_ml = abs(np.linalg.det(mask.affine[:3, :3])) / 1000
    assert core == round(float(np.asarray(mask.dataobj).sum()) * voxel_ml, 1) and core > 0
    # The expert lesion (drawn on the DWI) and the ADC < 620 core overlap.
    lesion = np.asarray(nib.load(str(ISLES / f"{prefix}msk.nii.gz")).dataobj) > 0
    assert (np.asarray(mask.dataobj) > 0)[lesion].mean() > 0.1
    for trial, by in summary["criteria"].items():
        assert by["thresholding"]["verdict"] == ("does not meet" if core >= 70 else "cannot be assessed")
    assert (tmp_path / "out" / "report.html").exists()
