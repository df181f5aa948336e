"""End-to-end: the Snakemake DAG on config/ci.yaml, and a run on broken data."""

import shutil
import subprocess
import sys

import pandas as pd
import pytest

from support import CI_ARGS, SNAKEMAKE, snakemake, workflow_copy

pytestmark = pytest.mark.slow


def test_lint_is_clean(tmp_path):
    workdir = workflow_copy(tmp_path / "repo")
    proc = subprocess.run([SNAKEMAKE, "--lint", "--configfile", "config/ci.yaml"], cwd=workdir,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Lints for" not in proc.stdout, proc.stdout


_HEAVY = ("matplotlib", "nibabel", "scipy", "torch", "ants", "nipype", "sklearn", "nilearn", "pydicom", "statsmodels")


def test_reading_the_snakefile_imports_no_imaging_or_plotting_stack(tmp_path):
    # Every Snakemake process reads the Snakefile: the main one, and on Slurm each job and each
    # step of a bundled job again; matplotlib, nibabel and SciPy cost it ~2 CPU s each time.
    workdir = workflow_copy(tmp_path / "repo")
    probe = ("import atexit, sys\n"
             f"atexit.register(lambda: print('LOADED', sorted(m for m in {_HEAVY!r} if m in sys.modules)))\n"
             "from snakemake.cli import main\n"
             "sys.argv = ['snakemake', '--list-rules', '--configfile', 'config/ci.yaml']\n"
             "main()\n")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=workdir, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "pretrain" in proc.stdout  # the rules were read
    assert "LOADED []" in proc.stdout, proc.stdout[-2000:]


def test_ci_study_cohort(ci_run):
    cohort = pd.read_csv(ci_run / "results/cohort/participants.tsv", sep="\t", keep_default_na=False)
    plan = pd.read_csv(ci_run / "resources/ci_bids/derivatives/simulation/plan.tsv", sep="\t", keep_default_na=False)
    merged = cohort.merge(plan[["participant_id", "simulated_group", "simulated_exclusion"]], on="participant_id")
    assert len(merged) == len(plan) == 20
    excluded = merged[merged.simulated_exclusion != "n/a"]
    assert (excluded.exclusion_reason == excluded.simulated_exclusion).all()
    included = merged[merged.simulated_exclusion == "n/a"]
    assert (included.reperfusion_group == included.simulated_group).all()
    table = pd.read_csv(ci_run / "results/cohort/table1.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert table.iloc[0]["all"] == str(len(included))
    assert (ci_run / "results/cohort/flow.png").stat().st_size > 10_000
    assert "Clinical and imaging information" in (ci_run / "results/cohort/table1.md").read_text()


def test_nothing_to_do_on_a_second_run(ci_run):
    proc = snakemake(ci_run, *CI_ARGS, "-n")
    assert proc.returncode == 0
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_bad_input_stops_with_a_clear_message_and_no_partial_results(ci_run, tmp_path):
    workdir = workflow_copy(tmp_path / "repo")
    bids = tmp_path / "data"
    shutil.copytree(ci_run / "resources/ci_bids", bids)
    cohort = pd.read_csv(ci_run / "results/cohort/participants.tsv", sep="\t", keep_default_na=False)
    label = cohort.loc[cohort.included.astype(str) == "True", "participant_id"].iloc[0]
    broken = bids / label / "ses-baseline" / "perf" / f"{label}_ses-baseline_CBF.nii.gz"
    broken.unlink()
    before = sorted(p.relative_to(bids) for p in bids.rglob("*"))
    (workdir / "mydata.yaml").write_text(f"dataset:\n  simulate: false\n  bids_dir: {bids}\n")
    proc = snakemake(workdir, "--configfile", "config/ci.yaml", "mydata.yaml")
    assert proc.returncode != 0
    log = proc.stdout + proc.stderr
    assert f"{label}: {broken}: the baseline CBF map is missing" in log
    assert "Fix:" in log
    assert not (workdir / "results/cohort/participants.tsv").exists()
    assert not (workdir / f"results/cohort/{label}").exists() or not any((workdir / f"results/cohort/{label}").iterdir())
    assert sorted(p.relative_to(bids) for p in bids.rglob("*")) == before
