"""`tissuefate predict`: trial criteria at their boundaries, the fold reproduction on the CI study,
DICOM round trip, the ISLES 2022 case without perfusion, and bad input (nothing written)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tissuefate import triage
from tissuefate.errors import InputError
from tissuefate.predict_patient import PatientMaps, check_tmax_scale, predict_patient

REPO = Path(__file__).resolve().parents[1]
ISLES = REPO.parent / "shared" / "data" / "isles22-strokecase0009"


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
