"""Rerunning one patient or one fold: `snakemake -n` on a finished CI study lists exactly the
jobs that depend on what changed (README, "Rerunning one patient or one fold").

Each test works on its own copy of the finished study (files, mtimes and Snakemake's metadata),
so the shared run stays untouched.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from support import CI_ARGS, snakemake

pytestmark = pytest.mark.slow

APPROACHES = ("pretraining", "separate")
TARGETS = ("tissue_at_risk", "ischemic_core")
# The bundle reads the summary table and the models: it follows every table update. The cost
# table (rule costs, fed by every final output) is redone with whatever reruns.
TABLES = {("metrics", ()), ("statistics", ()), ("figures", ()), ("bundle", ()), ("costs", ()), ("all", ())}

JOB_RE = re.compile(r"^\s*(?:local)?(?:rule|checkpoint) (\w+):\s*$")
WILDCARDS_RE = re.compile(r"^\s*wildcards: (.*)$")


def planned_jobs(workdir: Path, *args: str) -> set[tuple[str, tuple]]:
    """(rule, wildcards) of every job `snakemake -n` would run."""
    proc = snakemake(workdir, *CI_ARGS, "-n", *args)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    jobs: list[list] = []
    for line in out.splitlines():
        if m := JOB_RE.match(line):
            jobs.append([m.group(1), ()])
        elif (m := WILDCARDS_RE.match(line)) and jobs:
            jobs[-1][1] = tuple(sorted(tuple(kv.split("=", 1)) for kv in m.group(1).split(", ")))
    return {(rule, wc) for rule, wc in jobs}


def reexport(path: Path) -> None:
    """The map saved again by the scanner's software: same voxels, another header text.

    (A new mtime alone is not a change: Snakemake compares the checksums of files under 1 MB.)
    """
    import nibabel as nib

    img = nib.load(path)
    img = nib.Nifti1Image(np.asanyarray(img.dataobj), img.affine, img.header)
    img.header["descrip"] = b"re-exported"
    img.to_filename(path)


def job(rule: str, **wildcards) -> tuple[str, tuple]:
    return rule, tuple(sorted((k, str(v)) for k, v in wildcards.items()))


@pytest.fixture
def study(ci_run, tmp_path) -> Path:
    # copytree keeps mtimes (and copies Snakemake's metadata): nothing is to be done in the copy.
    return Path(shutil.copytree(ci_run, tmp_path / "study", symlinks=True))


def test_nothing_to_rerun_in_the_copy(study):
    assert planned_jobs(study) == set()


def test_one_patients_new_map_reruns_that_patient_and_what_depends_on_it(study):
    splits = json.loads((study / "results/splits/splits.json").read_text())
    # A minimal-reperfusion patient: in the test set of one fold, in training of the others.
    target = "tissue_at_risk"
    folds = splits[target]["folds"]
    pid = folds[0]["test"][0]
    label = pid.removeprefix("sub-")
    tmax = next((study / "resources/ci_bids" / pid / "ses-baseline").rglob(f"{pid}_ses-baseline_Tmax.nii.gz"))
    reexport(tmax)

    # The cohort table is a checkpoint: Snakemake reruns the patient's review and the table
    # first, and sees past it only once the table is rewritten.
    assert planned_jobs(study) == {job("review_participant", subject=label), ("cohort", ()), ("costs", ()), ("all", ())}
    proc = snakemake(study, *CI_ARGS, "--until", "cohort")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]

    # The review found the same as before, so the cohort table's content did not change and
    # the splits are not rewritten (Snakemake compares the checksums of small files).
    expected = TABLES | {("registration_accuracy", ())}
    expected |= {job("preprocess", subject=label), job("thresholding", subject=label)}
    for k, fold in enumerate(folds, start=1):
        if pid in fold["train"] or pid in fold["val"]:
            # The models that learn from the patient, and their predictions.
            expected |= {job(rule, approach=a, target=target, fold=k) for rule in ("train", "predict")
                         for a in APPROACHES}
        if pid in fold["test"]:
            # Its own target's model and the other target's (cross-applied for the mismatch).
            expected |= {job("predict", approach=a, target=t, fold=k) for a in APPROACHES for t in TARGETS}
    planned = planned_jobs(study)
    assert planned == expected, (f"unexpected: {sorted(planned - expected)}\n"
                                 f"missing: {sorted(expected - planned)}")
    # The fold that tests the patient keeps its models; no other patient's job reruns.
    assert job("train", approach="separate", target=target, fold=1) not in planned
    assert not any(rule in ("preprocess", "thresholding", "review_participant") and wc != (("subject", label),)
                   for rule, wc in planned)


def test_one_patients_clinical_row_reruns_its_review_and_the_tables_only(study):
    participants = study / "resources/ci_bids/participants.tsv"
    lines = participants.read_text().splitlines()
    header = lines[0].split("\t")
    row = lines[1].split("\t")
    label = row[0].removeprefix("sub-")
    age = header.index("age")
    row[age] = str(int(float(row[age])) + 1)
    lines[1] = "\t".join(row)
    participants.write_text("\n".join(lines) + "\n")

    assert planned_jobs(study) == {job("review_participant", subject=label), ("cohort", ()), ("costs", ()), ("all", ())}
    proc = snakemake(study, *CI_ARGS, "--until", "cohort")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    # Same patients in the same folds: no model is retrained, no map predicted again.
    assert planned_jobs(study) == TABLES | {("splits", ())}


def test_retraining_one_fold_reruns_that_fold_and_the_tables_only(study):
    # The README's command for one fold of one approach and target.
    model = "results/models/separate/ischemic_core/fold-2/model.pt"
    planned = planned_jobs(study, "--forcerun", model)
    assert planned == {
        job("train", approach="separate", target="ischemic_core", fold=2),
        job("predict", approach="separate", target="ischemic_core", fold=2),
    } | TABLES


def test_retraining_the_pretrained_model_reruns_every_fine_tuned_fold(study):
    planned = planned_jobs(study, "--forcerun", "results/models/pretrain/model.pt")
    n_folds = len(json.loads((study / "results/splits/splits.json").read_text())["tissue_at_risk"]["folds"])
    fine_tuned = {job(rule, approach="pretraining", target=t, fold=k)
                  for rule in ("train", "predict") for t in TARGETS for k in range(1, n_folds + 1)}
    assert planned == {("pretrain", ())} | fine_tuned | TABLES
