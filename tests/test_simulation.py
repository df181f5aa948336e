import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from tissuefate.io.bids import ParticipantFiles, read_sidecar
from tissuefate.io.derivatives import SPACE
from tissuefate.io.units import adc_factor_from_units, detect_adc_factor
from tissuefate.simulation import participant_labels, simulate_participant, write_plan
from tissuefate.simulation.clinical import PAPER_GROUP_COUNTS, allocate, make_plan

from support import load_config


def _arrays(root, label):
    files = ParticipantFiles(root, label)
    out = {}
    for name in ("b0", "b1000", "adc", "Tmax", "CBF"):
        path = files.baseline(name)
        if path.exists():
            out[name] = np.asarray(nib.load(path).dataobj)
    return out


def test_same_seed_same_dataset(tmp_path, ci_config):
    for run in ("a", "b"):
        write_plan(ci_config, tmp_path / run)
        simulate_participant(ci_config, tmp_path / run, "001")
    a, b = _arrays(tmp_path / "a", "001"), _arrays(tmp_path / "b", "001")
    assert a.keys() == b.keys() and a
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert (tmp_path / "a" / "participants.tsv").read_bytes() == (tmp_path / "b" / "participants.tsv").read_bytes()


def test_another_seed_another_dataset(tmp_path, ci_config):
    other = dict(ci_config, seed=ci_config["seed"] + 1)
    write_plan(ci_config, tmp_path / "a")
    write_plan(other, tmp_path / "b")
    simulate_participant(ci_config, tmp_path / "a", "001")
    simulate_participant(other, tmp_path / "b", "001")
    assert not np.array_equal(_arrays(tmp_path / "a", "001")["b1000"], _arrays(tmp_path / "b", "001")["b1000"])


def test_demo_groups_in_paper_proportions():
    config = load_config("config.yaml")
    plan = make_plan(config["simulation"], config["seed"])
    included = plan[plan.simulated_exclusion == "n/a"]
    for group, count in PAPER_GROUP_COUNTS.items():
        share = (included.simulated_group == group).mean()
        assert abs(share - count / 237) <= 0.05, group
    for reason, n in config["simulation"]["n_excluded"].items():
        assert (plan.simulated_exclusion == reason).sum() == n


def test_largest_remainder_allocation():
    assert allocate(237, {g: float(c) for g, c in PAPER_GROUP_COUNTS.items()}) == PAPER_GROUP_COUNTS
    assert sum(allocate(13, {"a": 1.0, "b": 1.0, "c": 1.0}).values()) == 13


def test_declared_adc_units_match_the_values(simulated_bids, ci_config):
    seen = set()
    for label in participant_labels(ci_config["simulation"]):
        files = ParticipantFiles(simulated_bids, label)
        sidecar = read_sidecar(files.baseline("adc"))
        adc = np.asarray(nib.load(files.baseline("adc")).dataobj)
        declared = adc_factor_from_units(sidecar["Units"])
        assert detect_adc_factor(adc) == declared, label
        truth = json.loads((files.truth_dir() / f"sub-{label}_desc-truth.json").read_text())
        assert truth["adc_factor_to_um2_per_s"] == declared
        seen.add(declared)
    assert seen == {1.0, 1000.0}, "the CI cohort should have both ADC units"


def test_sites_differ_in_orientation_and_perfusion_covers_fewer_slices(simulated_bids, ci_config):
    orientations = set()
    for label in participant_labels(ci_config["simulation"]):
        files = ParticipantFiles(simulated_bids, label)
        dwi = nib.load(files.baseline("b1000"))
        orientations.add("".join(nib.aff2axcodes(dwi.affine)))
        if files.baseline("Tmax").exists():
            perf = nib.load(files.baseline("Tmax"))
            dwi_height = dwi.shape[2] * dwi.header.get_zooms()[2]
            perf_height = perf.shape[2] * perf.header.get_zooms()[2]
            assert perf_height < dwi_height
    assert len(orientations) >= 2


def test_truth_coordinates_reproduce_the_native_images(simulated_bids):
    """Sampling the MNI-space truth at the stored true coordinates gives back the native ADC."""
    label = "001"
    files = ParticipantFiles(simulated_bids, label)
    truth_dir = files.truth_dir()
    coords_img = nib.load(truth_dir / f"sub-{label}_ses-baseline_acq-b1000_desc-mnicoords_xfm.nii.gz")
    coords = np.asarray(coords_img.dataobj)
    adc_native = np.asarray(nib.load(files.baseline("adc")).dataobj) * adc_factor_from_units(
        read_sidecar(files.baseline("adc"))["Units"])
    assert np.allclose(coords_img.affine, nib.load(files.baseline("adc")).affine)
    truth_adc = nib.load(truth_dir / f"sub-{label}_space-{SPACE}_ADC.nii.gz")
    ijk = np.linalg.solve(truth_adc.affine[:3, :3], coords.reshape(-1, 3).T - truth_adc.affine[:3, 3:4])
    expected = ndimage.map_coordinates(np.asarray(truth_adc.dataobj), ijk, order=1).reshape(adc_native.shape)
    inside = (adc_native > 0) & (expected > 100)
    assert inside.sum() > 1000
    r = np.corrcoef(adc_native[inside], expected[inside])[0, 1]
    assert r > 0.8, r
    # The true coordinates are not the identity: the head was really moved.
    ras = nib.affines.apply_affine(coords_img.affine, np.indices(adc_native.shape).reshape(3, -1).T)
    assert np.median(np.linalg.norm(ras - coords.reshape(-1, 3), axis=1)) > 5.0


def test_native_lesion_volume_matches_truth(simulated_bids, ci_config):
    plan = pd.read_csv(simulated_bids / "derivatives/simulation/plan.tsv", sep="\t")
    checked = 0
    for label in participant_labels(ci_config["simulation"]):
        files = ParticipantFiles(simulated_bids, label)
        if not files.infarct_mask.exists():
            continue
        truth = json.loads((files.truth_dir() / f"sub-{label}_desc-truth.json").read_text())
        if truth["final_infarct_ml_mni"] < 10:
            continue
        img = nib.load(files.infarct_mask)
        native_ml = float(np.asarray(img.dataobj).sum()) * abs(np.linalg.det(img.affine[:3, :3])) / 1000
        assert native_ml == pytest.approx(truth["final_infarct_ml_mni"], rel=0.25), label
        checked += 1
    assert checked >= 3
    assert len(plan) == len(participant_labels(ci_config["simulation"]))


def test_sidecars_declare_what_the_pipeline_needs(simulated_bids):
    files = ParticipantFiles(simulated_bids, "001")
    assert read_sidecar(files.baseline("Tmax"))["Units"] == "s"
    assert read_sidecar(files.baseline("CBF"))["Units"] == "mL/100g/min"
    assert read_sidecar(files.baseline("b1000"))["DiffusionBValue"] == 1000.0
    description = json.loads((simulated_bids / "dataset_description.json").read_text())
    assert description["DatasetType"] == "raw" and description["BIDSVersion"]
