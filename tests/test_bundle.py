"""The model bundle the workflow writes (results/bundle) and the checks made when loading it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

import tissuefate
from tissuefate.bundle import load_bundle, sha256
from tissuefate.errors import InputError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bundle(ci_run) -> Path:
    path = ci_run / "results" / "bundle"
    assert path.is_dir(), "the workflow's final targets must include results/bundle"
    return path


@pytest.fixture
def bundle_copy(bundle, tmp_path) -> Path:
    dst = tmp_path / "bundle"
    shutil.copytree(bundle, dst)
    return dst


def test_bundle_holds_the_study_fold_models_and_checksums(bundle, ci_run):
    b = load_bundle(bundle)
    n_folds = len(json.loads((ci_run / "results" / "splits" / "splits.json").read_text())["tissue_at_risk"]["folds"])
    for target in ("tissue_at_risk", "ischemic_core"):
        models = b.model_paths(target)
        assert [f for f, _ in models] == list(range(1, n_folds + 1))
        for fold, path in models:
            study = ci_run / "results" / "models" / "pretraining" / target / f"fold-{fold}" / "model.pt"
            assert sha256(path) == sha256(study)
    # every file but the manifest and Snakemake's marker of a directory() output
    files = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()} - {
        "manifest.json", ".snakemake_timestamp"}
    assert set(b.manifest["files"]) == files
    assert {"bundle.json", "config.yaml", "model_card.md"} <= files
    assert b.manifest["tissuefate_version"] == tissuefate.__version__
    assert b.meta["preprocessing"]["template_resolution_mm"] == b.meta["template"]["resolution_mm"]


def test_model_card_reports_the_study_metrics_with_iqr(bundle, ci_run):
    card = (bundle / "model_card.md").read_text()
    assert "not for clinical use" in card.lower()
    summary = pd.read_csv(ci_run / "results" / "tables" / "summary.tsv", sep="\t")
    row = summary[summary["approach"] == "pretraining"].iloc[0]
    line = (f"| {row['target']} | pretraining | {row['metric']} | {row['n']} | {row['median']:.3f} | "
            f"{row['q1']:.3f} | {row['q3']:.3f} |")
    assert line in card


def test_corrupted_model_is_refused(bundle_copy):
    model = next((bundle_copy / "models" / "ischemic_core").glob("*.pt"))
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"fold-\d\.pt: the file's SHA-256 does not match"):
        load_bundle(bundle_copy)


def test_other_tissuefate_version_is_refused(bundle_copy):
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    manifest["tissuefate_version"] = "0.0.1"
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match=r"written by tissuefate 0\.0\.1.*Fix: install tissuefate==0\.0\.1"):
        load_bundle(bundle_copy)


def test_missing_and_extra_files_are_refused(bundle_copy):
    (bundle_copy / "notes.txt").write_text("added")
    with pytest.raises(InputError, match="notes.txt: a file in the bundle is not listed"):
        load_bundle(bundle_copy)
    (bundle_copy / "notes.txt").unlink()
    (bundle_copy / "model_card.md").unlink()
    with pytest.raises(InputError, match="model_card.md: a file listed in the bundle manifest is missing"):
        load_bundle(bundle_copy)
