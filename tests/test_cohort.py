"""The cohort stage on the simulated CI cohort, and its refusal of bad input."""

import gzip
import hashlib
import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from tissuefate.cohort import review_participant
from tissuefate.errors import InputError
from tissuefate.io.bids import ParticipantFiles, sidecar_path
from tissuefate.io.participants import read_participants
from tissuefate.simulation import participant_labels


def _review_all(root, config):
    participants = read_participants(root)
    return {row["participant_id"]: review_participant(root, row["participant_id"], row, config)
            for row in participants.to_dict("records")}


def test_every_simulated_patient_lands_where_the_simulator_meant(simulated_bids, config):
    plan = pd.read_csv(simulated_bids / "derivatives/simulation/plan.tsv", sep="\t", keep_default_na=False)
    reviews = _review_all(simulated_bids, config)
    for row in plan.to_dict("records"):
        review = reviews[row["participant_id"]]
        if row["simulated_exclusion"] != "n/a":
            assert not review["included"] and review["exclusion_reason"] == row["simulated_exclusion"], row["participant_id"]
        else:
            assert review["included"], row["participant_id"]
            assert review["reperfusion_group"] == row["simulated_group"], row["participant_id"]


def test_reperfusion_rate_close_to_the_simulated_truth(simulated_bids, config):
    reviews = _review_all(simulated_bids, config)
    compared = 0
    for label in participant_labels(config["simulation"]):
        truth = json.loads((ParticipantFiles(simulated_bids, label).truth_dir() / f"sub-{label}_desc-truth.json").read_text())
        rate = reviews[f"sub-{label}"]["reperfusion_rate"]
        if truth["simulated_exclusion"] == "n/a" and not np.isnan(truth["achieved_reperfusion_rate_mni"]):
            # Native grids differ from the MNI grid; volumes agree to a few percent.
            assert rate == pytest.approx(truth["achieved_reperfusion_rate_mni"], abs=8.0), label
            compared += 1
    assert compared >= 5


def test_followup_window_decides_testability(simulated_bids, config):
    for pid, review in _review_all(simulated_bids, config).items():
        if np.isnan(review["followup_hours"]):
            assert not review["has_followup_3to7d"]
        else:
            assert review["has_followup_3to7d"] == (72 <= review["followup_hours"] <= 168), pid


def _included_label(root, config):
    for row in read_participants(root).to_dict("records"):
        review = review_participant(root, row["participant_id"], row, config)
        if review["included"]:
            return row["participant_id"][4:], row
    raise AssertionError("no included participant")


def _check(err, label, path_part, fix_word):
    message = str(err.value)
    assert f"sub-{label}" in message
    assert path_part in message
    assert "Fix:" in message and fix_word in message.lower()


def test_missing_map_is_named(bids_copy, config):
    label, row = _included_label(bids_copy, config)
    path = ParticipantFiles(bids_copy, label).baseline("CBF")
    path.unlink()
    with pytest.raises(InputError) as err:
        review_participant(bids_copy, label, row, config)
    _check(err, label, path.name, "add the file")


def test_non_3d_image_is_refused(bids_copy, config):
    label, row = _included_label(bids_copy, config)
    path = ParticipantFiles(bids_copy, label).baseline("MTT")
    img = nib.load(path)
    data = np.stack([np.asarray(img.dataobj)] * 3, axis=-1)
    nib.save(nib.Nifti1Image(data, img.affine), path)
    with pytest.raises(InputError) as err:
        review_participant(bids_copy, label, row, config)
    _check(err, label, path.name, "3d volume")


def test_nan_voxels_are_refused(bids_copy, config):
    label, row = _included_label(bids_copy, config)
    path = ParticipantFiles(bids_copy, label).baseline("Tmax")
    img = nib.load(path)
    data = np.asarray(img.dataobj).copy()
    data[0, 0, 0] = np.nan
    nib.save(nib.Nifti1Image(data, img.affine), path)
    with pytest.raises(InputError) as err:
        review_participant(bids_copy, label, row, config)
    _check(err, label, path.name, "nan")


def test_empty_image_is_refused(bids_copy, config):
    label, row = _included_label(bids_copy, config)
    path = ParticipantFiles(bids_copy, label).baseline("b1000")
    img = nib.load(path)
    nib.save(nib.Nifti1Image(np.zeros(img.shape, np.float32), img.affine), path)
    with pytest.raises(InputError) as err:
        review_participant(bids_copy, label, row, config)
    _check(err, label, path.name, "re-export")


def test_unreadable_file_is_refused(bids_copy, config):
    label, row = _included_label(bids_copy, config)
    path = ParticipantFiles(bids_copy, label).baseline("CBV")
    path.write_bytes(gzip.compress(b"this is not a nifti file"))
    with pytest.raises(InputError) as err:
        review_participant(bids_copy, label, row, config)
    _check(err, label, path.name, "re-export")


def test_undeclared_adc_unit_is_refused_unless_detection_is_asked_for(bids_copy, config):
    label, row = _included_label(bids_copy, config)
    adc = ParticipantFiles(bids_copy, label).baseline("adc")
    sidecar = json.loads(sidecar_path(adc).read_text())
    declared = sidecar.pop("Units")
    sidecar_path(adc).write_text(json.dumps(sidecar))
    with pytest.raises(InputError) as err:
        review_participant(bids_copy, label, row, config)
    _check(err, label, adc.name, "units")
    config["preprocessing"]["adc_unit"] = "auto"
    review = review_participant(bids_copy, label, row, config)
    assert review["adc_unit_source"] == "detected"
    assert review["adc_unit_factor"] == (1000.0 if declared.startswith("10^-3") else 1.0)


def test_wrong_declared_adc_unit_is_caught(bids_copy, config):
    label, row = _included_label(bids_copy, config)
    adc = ParticipantFiles(bids_copy, label).baseline("adc")
    sidecar = json.loads(sidecar_path(adc).read_text())
    sidecar["Units"] = "10^-3 mm^2/s" if sidecar["Units"].startswith("10^-6") else "10^-6 mm^2/s"
    sidecar_path(adc).write_text(json.dumps(sidecar))
    with pytest.raises(InputError, match="correct the sidecar"):
        review_participant(bids_copy, label, row, config)


@pytest.mark.parametrize("hostile", ["../../etc", "sub-01;rm -rf ~", "sub-01 02", "sub-$(reboot)", "sub-a/b"])
def test_hostile_participant_id_is_refused(bids_copy, hostile):
    tsv = bids_copy / "participants.tsv"
    df = pd.read_csv(tsv, sep="\t", dtype=str, keep_default_na=False)
    df.loc[0, "participant_id"] = hostile
    df.to_csv(tsv, sep="\t", index=False)
    with pytest.raises(InputError, match="letters and digits only"):
        read_participants(bids_copy)


def test_review_never_writes_to_the_inputs(bids_copy, config):
    def digest():
        h = hashlib.sha256()
        for path in sorted(bids_copy.rglob("*")):
            if path.is_file():
                h.update(path.name.encode())
                h.update(path.read_bytes())
        return h.hexdigest()

    before = digest()
    _review_all(bids_copy, config)
    assert digest() == before
