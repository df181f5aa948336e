"""Pretraining split and cross-validation folds (METHOD.md sections 6-7)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tissuefate.errors import InputError
from tissuefate.splits import job_patients, load_splits, make_splits, read_splits, write_splits

PAPER_GROUPS = {"minimal": 52, "partial": 57, "major": 80, "unknown": 48}


def paper_cohort(seed: int = 0, groups=PAPER_GROUPS, n_excluded: int = 10) -> pd.DataFrame:
    """The paper's group sizes, about 1 in 8 patients without a 3-7 day follow-up."""
    rng = np.random.default_rng(seed)
    rows = []
    for group, n in groups.items():
        for _ in range(n):
            rows.append({"reperfusion_group": group, "included": True, "has_followup_3to7d": bool(rng.random() > 0.13)})
    for _ in range(n_excluded):
        rows.append({"reperfusion_group": "minimal", "included": False, "has_followup_3to7d": True})
    order = rng.permutation(len(rows))  # table order must not matter
    df = pd.DataFrame([rows[i] for i in order])
    df.insert(0, "participant_id", [f"sub-{i:03d}" for i in range(1, len(df) + 1)])
    return df


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return paper_cohort()


def _ids(df, group=None, followup=None):
    sel = df["included"].copy()
    if group is not None:
        sel &= df["reperfusion_group"].isin([group] if isinstance(group, str) else group)
    if followup is not None:
        sel &= df["has_followup_3to7d"] == followup
    return set(df.loc[sel, "participant_id"])


@pytest.mark.parametrize("target,group", [("tissue_at_risk", "minimal"), ("ischemic_core", "major")])
def test_folds(cohort, target, group):
    splits = make_splits(cohort, seed=1)
    folds = splits[target]["folds"]
    testable, train_only = _ids(cohort, group, True), _ids(cohort, group, False)
    assert len(folds) == 5 and train_only
    tested = [p for f in folds for p in f["test"]]
    assert sorted(tested) == sorted(testable), "every eligible patient tested exactly once"
    for f in folds:
        train, val, test = set(f["train"]), set(f["val"]), set(f["test"])
        assert not (train & val or train & test or val & test), "disjoint"
        assert train | val | test == testable | train_only
        assert train_only <= train and not train_only & (val | test), "train-only patients never validate or test"
        assert 5 <= len(test) <= len(testable) // 5 + 1
        assert abs(len(val) - len(test)) <= 1
        assert abs(len(train - train_only) - 3 * len(test)) <= 3, "3:1:1"
    assert not set(splits[target]["train_only"]) & testable


def test_pretraining_is_partial_plus_unknown_90_10(cohort):
    pre = make_splits(cohort, seed=1)["pretraining"]
    expected = _ids(cohort, ("partial", "unknown"))
    assert set(pre["train"]) | set(pre["val"]) == expected and not set(pre["train"]) & set(pre["val"])
    assert len(pre["val"]) == round(0.1 * len(expected)) == 10


def test_excluded_patients_are_nowhere(cohort):
    splits = make_splits(cohort, seed=1)
    excluded = set(cohort.loc[~cohort["included"], "participant_id"])
    text = json.dumps(splits)
    assert excluded and not any(f'"{p}"' in text for p in excluded)


def test_deterministic_for_a_seed(cohort):
    a = make_splits(cohort, seed=3)
    assert a == make_splits(cohort.sample(frac=1, random_state=0), seed=3), "row order does not matter"
    assert a != make_splits(cohort, seed=4)


def test_too_few_patients_for_five_folds_names_the_target():
    df = paper_cohort(groups={"minimal": 20, "partial": 10, "major": 3, "unknown": 5})
    with pytest.raises(InputError, match="ischemic_core.*at least 5") as err:
        make_splits(df, seed=0)
    assert "Fix:" in str(err.value)


def test_bad_settings_and_tables():
    df = paper_cohort()
    with pytest.raises(ValueError, match="ratio"):
        make_splits(df, seed=0, ratio=(2, 1, 1))
    with pytest.raises(InputError, match="reperfusion_group"):
        make_splits(df.assign(reperfusion_group="none"), seed=0)
    with pytest.raises(InputError, match="lacks column"):
        make_splits(df.drop(columns="has_followup_3to7d"), seed=0)


def test_write_load_and_job_patients(cohort, tmp_path):
    tsv = tmp_path / "cohort.tsv"
    cohort.to_csv(tsv, sep="\t", index=False)
    written = write_splits(tsv, tmp_path / "splits" / "splits.json", seed=1)
    loaded = load_splits(tmp_path / "splits" / "splits.json")
    assert loaded == written == make_splits(cohort, seed=1)
    # What the workflow hands each training and prediction job is what splits.json records.
    assert read_splits(tsv, seed=1) == loaded
    job = job_patients(loaded, "separate", "ischemic_core", 2)
    assert job == loaded["ischemic_core"]["folds"][1]
    assert job_patients(loaded, "pretrain")["train"] == loaded["pretraining"]["train"]
    with pytest.raises(ValueError, match="fold"):
        job_patients(loaded, "pretraining", "tissue_at_risk", 6)
